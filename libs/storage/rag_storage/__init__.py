"""rag_storage."""
