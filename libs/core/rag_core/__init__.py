"""rag-engine's shared contract: event models, settings and SQL migrations."""
