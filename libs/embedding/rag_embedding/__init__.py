"""rag_embedding: one small interface over three embedding providers (docs/contract.md §3).

    embedder = build_embedder(settings)          # EmbeddingSettings
    vectors = await embedder.embed(["a", "b"])   # float32 (2, embedder.dim), unit rows
    store(embedder.model_name, embedder.dim, vector_literal(vectors[0]))

``hash`` is deterministic and offline (tests), ``minilm`` runs all-MiniLM-L6-v2 in numpy
(dev), ``openai`` calls any OpenAI-compatible endpoint. Errors: ``TransientEmbeddingError``
(retry the job later), ``PermanentEmbeddingError`` (fail it), with
``EmbeddingConfigurationError`` a permanent error raised at start where possible.
Every embedder ``build_embedder`` returns is wrapped in a ``TimeoutEmbedder``: one call,
the provider's retries included, fails with ``EmbeddingTimeoutError`` (transient) after
``EMBEDDING_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

from .base import (
    STORAGE_DIM,
    Embedder,
    EmbeddingConfigurationError,
    EmbeddingError,
    PermanentEmbeddingError,
    TransientEmbeddingError,
    Vectors,
    l2_normalise,
    vector_literal,
)
from .hashing import HashEmbedder
from .minilm import MiniLMEmbedder
from .openai_compat import OpenAIEmbedder
from .settings import EmbeddingSettings
from .timeout import EmbeddingTimeoutError, TimeoutEmbedder

__all__ = [
    "STORAGE_DIM",
    "Embedder",
    "EmbeddingConfigurationError",
    "EmbeddingError",
    "EmbeddingTimeoutError",
    "HashEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "PermanentEmbeddingError",
    "TimeoutEmbedder",
    "TransientEmbeddingError",
    "Vectors",
    "build_embedder",
    "l2_normalise",
    "vector_literal",
]


def build_embedder(settings: EmbeddingSettings) -> TimeoutEmbedder:
    """The embedder ``EMBEDDING_PROVIDER`` names, each call bounded by
    ``EMBEDDING_TIMEOUT_SECONDS`` (``.inner`` is the provider's own embedder). Raises
    ``EmbeddingConfigurationError`` (message starts with the variable at fault) when it
    cannot work, so a service can stop at start with one clear line. Cheap: model weights
    load on first use."""
    return TimeoutEmbedder(_provider_embedder(settings), settings.embedding_timeout_seconds)


def _provider_embedder(settings: EmbeddingSettings) -> Embedder:
    provider = settings.embedding_provider
    if provider == "hash":
        return HashEmbedder()
    if provider == "minilm":
        return MiniLMEmbedder()
    if provider == "openai":
        if not settings.embedding_base_url:
            raise EmbeddingConfigurationError("EMBEDDING_BASE_URL is required when EMBEDDING_PROVIDER=openai")
        if not settings.embedding_model:
            raise EmbeddingConfigurationError("EMBEDDING_MODEL is required when EMBEDDING_PROVIDER=openai")
        return OpenAIEmbedder(
            settings.embedding_base_url, settings.embedding_model, settings.embedding_api_key
        )
    raise EmbeddingConfigurationError(f"EMBEDDING_PROVIDER={provider!r} is not one of hash, minilm, openai")
