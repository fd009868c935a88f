"""rag_observability."""
