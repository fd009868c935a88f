"""`openai` provider: any OpenAI-compatible ``POST /v1/embeddings`` (OpenAI, vLLM, TEI,
Ollama, LiteLLM, ...).

Retries live here, inside one ``embed`` call, because a rate limit is the normal weather of
a hosted API: three 429s in a row must cost a few seconds, not three job attempts
(issue 5). Only when the retry budget of one request is spent does the call raise
``TransientEmbeddingError`` and hand the decision to the job runtime. A 4xx other than 429
(bad key, unknown model, input too long) is ``PermanentEmbeddingError``: the same request
will fail the same way.

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

import asyncio
import email.utils
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import structlog

from .base import (
    STORAGE_DIM,
    EmbeddingConfigurationError,
    PermanentEmbeddingError,
    TransientEmbeddingError,
    Vectors,
    l2_normalise,
)

log = structlog.get_logger("rag_embedding")

DEFAULT_BATCH_SIZE = 64
LOGGED_BODY_CHARS = 300
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def embeddings_url(base_url: str) -> str:
    """``{base}/v1/embeddings``, whether or not the configured base already ends in /v1."""
    base = base_url.rstrip("/")
    if base.endswith("/embeddings"):
        return base
    if base.endswith("/v1"):
        return base + "/embeddings"
    return base + "/v1/embeddings"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OpenAIEmbedder:
    """Batched client for an OpenAI-compatible embeddings endpoint.

    ``max_attempts`` counts HTTP requests per batch (the first try included). Backoff is
    "full jitter" exponential — ``uniform(0, min(backoff_max, backoff_base * 2**n))`` — so
    many workers hitting one rate limit do not retry in lockstep; a ``Retry-After`` header
    takes precedence (capped at ``retry_after_max``).
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
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = embeddings_url(base_url)
        self.model_name = model
        self.dim = expected_dim
        self.api_key = api_key
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.timeout = timeout

    async def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        # One client per call: connections are reused across the batches of a document,
        # and nothing is bound to an event loop between calls.
        async with httpx.AsyncClient(timeout=self.timeout, headers=headers) as client:
            for i in range(0, len(texts), self.batch_size):
                batch = list(texts[i : i + self.batch_size])
                out[i : i + len(batch)] = await self._embed_batch(client, batch)
        return out

    async def _embed_batch(self, client: httpx.AsyncClient, batch: list[str]) -> Vectors:
        payload = {"model": self.model_name, "input": batch}
        last_error = "no attempt made"
        for attempt in range(self.max_attempts):
            retry_after: float | None = None
            try:
                response = await client.post(self.url, json=payload)
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                last_error = type(exc).__name__
                self._log_failure(attempt, error=f"{type(exc).__name__}: {exc}")
            else:
                status = response.status_code
                if status < 300:
                    return self._parse(response, len(batch))
                self._log_failure(attempt, status=status, body=response.text[:LOGGED_BODY_CHARS])
                if status == 429 or status >= 500:
                    last_error = f"HTTP {status}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                else:
                    raise PermanentEmbeddingError(f"it answered HTTP {status}")
            if attempt + 1 < self.max_attempts:
                await asyncio.sleep(self._delay(attempt, retry_after))
        raise TransientEmbeddingError(
            f"the embedding service still failed after {self.max_attempts} attempts ({last_error})"
        )

    def _log_failure(self, attempt: int, **details: object) -> None:
        """The details a user must not see (URL, upstream body), for the operator."""
        log.warning(
            "embedding_request_failed",
            url=self.url,
            model=self.model_name,
            attempt=attempt + 1,
            max_attempts=self.max_attempts,
            **details,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        return random.uniform(0.0, min(self.backoff_max, self.backoff_base * 2.0**attempt))

    def _parse(self, response: httpx.Response, count: int) -> Vectors:
        try:
            body: Any = response.json()
            items = sorted(body["data"], key=lambda d: int(d.get("index", 0)))
            rows = [item["embedding"] for item in items]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # A 200 with a body we cannot read is most often a proxy or gateway hiccup.
            self._log_failure(
                0, status=response.status_code, error=repr(exc), body=response.text[:LOGGED_BODY_CHARS]
            )
            raise TransientEmbeddingError(
                "the embedding service sent an answer that could not be read"
            ) from exc
        if len(rows) != count:
            raise PermanentEmbeddingError(f"it returned {len(rows)} embeddings for {count} inputs")
        dims = {len(row) for row in rows}
        if dims != {self.dim}:
            raise EmbeddingConfigurationError(
                f"EMBEDDING_MODEL={self.model_name} returns {sorted(dims)}-dimension vectors; "
                f"the chunks table stores vector({self.dim}): choose a {self.dim}-dimension model"
            )
        return l2_normalise(np.asarray(rows, dtype=np.float32))
