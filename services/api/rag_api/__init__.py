"""rag_api."""
