"""The one interface every embedding provider implements, and the errors it may raise.

Vectors are returned as one float32 numpy array of shape ``(len(texts), dim)``, one
L2-normalised row per text, in input order: a 300-page document is ~1,500 chunks, and a
list of Python floats would cost six times the memory of the array for nothing. Use
:func:`vector_literal` to turn a row into pgvector's text form.

The error classes let the job runtime choose without knowing the provider:
``TransientEmbeddingError`` → requeue the job later (a new attempt);
``PermanentEmbeddingError`` → fail it now (retrying cannot help).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

# The chunks table stores `embedding vector(384)` (0001_core.sql): every provider must
# produce exactly this many dimensions or the INSERT would fail after all the work is done.
STORAGE_DIM = 384

Vectors = NDArray[np.float32]


class EmbeddingError(Exception):
    """Base class of every error an embedder raises on purpose."""


class TransientEmbeddingError(EmbeddingError):
    """Worth retrying later: rate limited, server error, network trouble, timeouts."""


class PermanentEmbeddingError(EmbeddingError):
    """Retrying the same request cannot succeed (bad request, auth refused, bad output)."""


class EmbeddingConfigurationError(PermanentEmbeddingError):
    """The configured provider cannot work as set up (missing setting, wrong dimension,
    model files absent). Raised by ``build_embedder`` at start where it can be known then,
    so the process stops with one clear line instead of failing every job."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of ``dim`` floats.

    ``model_name`` and ``dim`` are stored with every chunk so that a change of model is
    detected (and the document re-embedded) instead of mixing vector spaces in one index.
    """

    model_name: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; returns float32 ``(len(texts), dim)``, rows L2-normalised.

        Must not block the event loop for long (CPU work runs in a thread).
        """
        ...


def l2_normalise(vectors: Vectors) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero) so cosine == dot product."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


def vector_literal(vector: NDArray[np.floating] | Sequence[float]) -> str:
    """pgvector's text input form, ``[0.1,0.2,...]``: usable as ``%s::vector`` with psycopg
    without registering an adapter. pgvector stores float4, which 9 significant digits
    round-trip exactly."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"
