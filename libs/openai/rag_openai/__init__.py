"""One OpenAI-compatible HTTP client (embeddings and streamed chat completions) with the
shared retry policy (rag_retry), and errors typed by what the caller should do:
``TransientError`` (retry later; ``StreamBroken``, ``MalformedAnswer``), ``PermanentError``.
rag_embedding's ``openai`` provider and the api's ``openai`` answer provider are thin
adapters over it."""

from __future__ import annotations

from rag_openai.client import DEFAULT_RETRY, DEFAULT_TIMEOUT, OpenAIClient, OpenAISession, endpoint_url
from rag_openai.errors import MalformedAnswer, OpenAIError, PermanentError, StreamBroken, TransientError
from rag_openai.sse import sse_text

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "MalformedAnswer",
    "OpenAIClient",
    "OpenAIError",
    "OpenAISession",
    "PermanentError",
    "StreamBroken",
    "TransientError",
    "endpoint_url",
    "sse_text",
]
