"""`openai` provider: any OpenAI-compatible ``POST /v1/embeddings`` (OpenAI, vLLM, TEI,
Ollama, LiteLLM, ...), over rag_openai's client.

The HTTP, the retries (429/5xx/timeouts inside one ``embed`` call, ``Retry-After``
honoured, so a rate limit costs seconds, not job attempts) and the logging are
rag_openai's; this adapter batches, checks what came back, and maps the client's errors
to the embedding errors the job runtime knows: spent retries and unreadable answers are
``TransientEmbeddingError``, a 4xx other than 429 (bad key, unknown model, input too
long) is ``PermanentEmbeddingError``: the same request will fail the same way.

Dimension: the chunks table is ``vector(384)``. The dimension of a remote model is only
known from its answer, so every answer is checked and a model whose vectors are not 384
long raises ``EmbeddingConfigurationError`` (permanent) naming the model and its
dimension. Use a 384-dimension model (e.g. all-MiniLM-L6-v2 served by TEI or vLLM).

Error texts: an exception raised here may reach a user (a document's `error`), so its
message names the failure (HTTP status, exception class) but never the endpoint's URL or
host, the API key, or the body the endpoint answered. Those go to the log
(`embedding_request_failed`), where the job runtime's context (job id) is bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from rag_openai import (
    DEFAULT_TIMEOUT,
    MalformedAnswer,
    OpenAIClient,
    PermanentError,
    TransientError,
    endpoint_url,
)
from rag_retry import RetryPolicy

from .base import (
    STORAGE_DIM,
    EmbeddingConfigurationError,
    PermanentEmbeddingError,
    TransientEmbeddingError,
    Vectors,
    l2_normalise,
)

DEFAULT_BATCH_SIZE = 64
DEFAULT_RETRY = RetryPolicy(base_seconds=0.5, max_seconds=20.0)
UNREADABLE = "the embedding service sent an answer that could not be read"


class OpenAIEmbedder:
    """Batched embeddings from an OpenAI-compatible endpoint.

    ``max_attempts`` counts HTTP requests per batch (the first try included), spaced by
    ``retry`` (rag_retry's policy: exponential backoff with jitter, or the endpoint's
    ``Retry-After``, capped).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        expected_dim: int = STORAGE_DIM,
        max_attempts: int = 6,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = endpoint_url(base_url, "embeddings")  # what is called, for operators and tests
        self.model_name = model
        self.dim = expected_dim
        self.batch_size = batch_size
        self.client = OpenAIClient(
            base_url,
            api_key,
            max_attempts=max_attempts,
            retry=retry,
            timeout=timeout,
            failure_event="embedding_request_failed",
        )

    async def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        try:
            # One session per call: connections are reused across the batches of a
            # document, and nothing is bound to an event loop between calls.
            async with self.client.session() as api:
                for i in range(0, len(texts), self.batch_size):
                    batch = list(texts[i : i + self.batch_size])
                    out[i : i + len(batch)] = self._vectors(
                        await api.embeddings(self.model_name, batch), len(batch)
                    )
        except MalformedAnswer as exc:
            raise TransientEmbeddingError(UNREADABLE) from exc
        except TransientError as exc:
            raise TransientEmbeddingError(
                f"the embedding service still failed after {exc.attempts} attempts ({exc.reason})"
            ) from exc
        except PermanentError as exc:
            raise PermanentEmbeddingError(f"it answered HTTP {exc.status}") from exc
        return out

    def _vectors(self, rows: list[list[float]], count: int) -> Vectors:
        if len(rows) != count:
            raise PermanentEmbeddingError(f"it returned {len(rows)} embeddings for {count} inputs")
        dims = {len(row) for row in rows}
        if dims != {self.dim}:
            raise EmbeddingConfigurationError(
                f"EMBEDDING_MODEL={self.model_name} returns {sorted(dims)}-dimension vectors; "
                f"the chunks table stores vector({self.dim}): choose a {self.dim}-dimension model"
            )
        try:
            return l2_normalise(np.asarray(rows, dtype=np.float32))
        except (TypeError, ValueError) as exc:  # vectors of something other than numbers
            raise TransientEmbeddingError(UNREADABLE) from exc
