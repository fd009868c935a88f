"""One retry policy (exponential backoff with jitter, capped, honouring Retry-After) for every loop and client that retries."""
