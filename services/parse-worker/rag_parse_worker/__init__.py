"""rag_parse_worker."""
