"""A deadline around every embedding call, whatever the provider does inside it.

A provider may retry for minutes (the ``openai`` client backs off through rate limits
and waits up to a minute per request); a search or a job must not wait that long for a
dead service. ``TimeoutEmbedder`` bounds one ``embed`` call, retries included, and turns
an overrun into ``EmbeddingTimeoutError``: transient, so a job is retried later and a
search answers 503 instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .base import Embedder, TransientEmbeddingError, Vectors


class EmbeddingTimeoutError(TransientEmbeddingError):
    """One embedding call did not finish within its deadline."""


class TimeoutEmbedder:
    """Wraps ``inner``: each ``embed`` call fails after ``seconds`` with ``EmbeddingTimeoutError``.

    ``model_name`` and ``dim`` are the inner embedder's, so stored chunks and search
    queries name the same model whether or not the deadline wrapper is in between.
    """

    def __init__(self, inner: Embedder, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("the embedding timeout must be positive")
        self.inner = inner
        self.seconds = seconds
        self.model_name = inner.model_name
        self.dim = inner.dim

    async def embed(self, texts: Sequence[str]) -> Vectors:
        try:
            async with asyncio.timeout(self.seconds):
                return await self.inner.embed(texts)
        except TimeoutError:
            raise EmbeddingTimeoutError(
                f"the embedding call did not finish within {self.seconds:g} seconds"
            ) from None
