"""rag_jobqueue."""
