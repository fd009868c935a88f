"""rag_ingest_worker."""
