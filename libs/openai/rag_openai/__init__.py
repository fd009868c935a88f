"""One OpenAI-compatible HTTP client (embeddings and streamed chat completions) with the shared retry policy."""
