"""rag_embedding."""
