"""rag-engine's test harness: pytest fixtures, the whole system as real processes, fakes and probes."""
