"""`hash` provider: deterministic feature hashing, offline and dependency-free.

Why: tests and CI need embeddings that are identical on every machine and every run, cost
nothing to load, and still make search meaningful — a query that shares words with a
passage lands near it. Each lower-cased word (minus a few stop words) and each adjacent
word pair is hashed (blake2b, stable across processes, unlike ``hash()``) to one of
``dim`` buckets with a sign taken from another hash bit (signed hashing keeps collisions
from adding up in one direction); counts are damped with ``1 + log(tf)`` and the vector is
L2-normalised so cosine similarity is a dot product.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .base import STORAGE_DIM, Vectors

_WORD = re.compile(r"\w+")
# Words so common that matching on them says nothing; dropping them keeps short queries
# from being pulled towards every passage.
_STOP = frozenset(
    "a an and are as at be but by for from has have he her his i in is it its of on or "
    "she so that the their them they this to was were will with you your".split()
)
# A text with no word at all still needs a unit vector: pgvector's cosine distance to a
# zero vector is NaN, and the HNSW index would not rank it.
_EMPTY_FEATURE = "\x00empty"
# Beyond this many characters a text is embedded from its beginning only; it bounds the
# cost of a pathological input (chunks are ~1 KB).
_MAX_CHARS = 100_000


def _features(text: str) -> Counter[str]:
    words = [w for w in _WORD.findall(text[:_MAX_CHARS].lower()) if w not in _STOP]
    feats: Counter[str] = Counter(words)
    feats.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    return feats or Counter({_EMPTY_FEATURE: 1})


def hash_vector(text: str, dim: int = STORAGE_DIM) -> Vectors:
    """One text's feature-hashed unit vector (float32, shape ``(dim,)``)."""
    vec = np.zeros(dim, dtype=np.float32)
    for feat, tf in _features(text).items():
        h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
        weight = 1.0 + math.log(tf)
        # Bigrams weigh a little less: they mostly sharpen ranking between passages
        # that already share the words.
        if " " in feat:
            weight *= 0.5
        vec[h % dim] += weight if (h >> 63) & 1 else -weight
    norm = float(np.linalg.norm(vec))
    if norm > 0.0:
        vec /= norm
    return vec


class HashEmbedder:
    """Feature-hashing embedder; ``model_name`` carries the version and dimension so that
    a change of the recipe is detected like a change of model."""

    def __init__(self, dim: int = STORAGE_DIM) -> None:
        self.dim = dim
        self.model_name = f"hash-v1-{dim}"

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = hash_vector(text, self.dim)
        return out

    async def embed(self, texts: Sequence[str]) -> Vectors:
        # Cheap per text, but a whole document's chunks at once would hold the loop for
        # tens of milliseconds: run larger calls in a thread.
        if len(texts) <= 16:
            return self.embed_sync(texts)
        return await asyncio.to_thread(self.embed_sync, list(texts))
