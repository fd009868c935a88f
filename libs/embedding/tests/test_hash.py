"""`hash` provider and the shared helpers: deterministic, normalised, useful for search."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from rag_embedding import (
    STORAGE_DIM,
    Embedder,
    EmbeddingConfigurationError,
    HashEmbedder,
    OpenAIEmbedder,
    PermanentEmbeddingError,
    build_embedder,
    vector_literal,
)
from rag_embedding.settings import EmbeddingSettings

pytestmark = pytest.mark.anyio

PASSAGES = [
    "Invoices are paid by bank transfer within thirty days.",
    "The garden has roses, tulips and a small pond with goldfish.",
    "Kubernetes restarts a pod whose liveness probe fails.",
    "Our cafeteria serves vegetarian lunch every Friday.",
]


async def test_shape_dtype_norm_and_identity() -> None:
    embedder = HashEmbedder()
    assert (embedder.model_name, embedder.dim) == ("hash-v1-384", STORAGE_DIM)
    assert isinstance(embedder, Embedder)
    vectors = await embedder.embed([*PASSAGES, "", "   ", "!!!"])
    assert vectors.shape == (len(PASSAGES) + 3, STORAGE_DIM) and vectors.dtype == np.float32
    # Every row is a unit vector, including texts without any word (never a zero vector:
    # pgvector's cosine distance to it would be NaN).
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    again = await embedder.embed(PASSAGES)
    assert np.array_equal(vectors[: len(PASSAGES)], again)


async def test_large_calls_run_in_a_thread_and_match_small_ones() -> None:
    embedder = HashEmbedder()
    texts = [f"{p} number {i}" for i, p in enumerate(PASSAGES * 10)]
    big = await embedder.embed(texts)
    small = np.vstack([await embedder.embed([t]) for t in texts])
    assert np.array_equal(big, small)


def test_same_vectors_in_another_process() -> None:
    """Python's hash() is salted per process; the embedding must not be."""
    code = (
        "import hashlib; from rag_embedding.hashing import hash_vector;"
        "print(hashlib.sha256(hash_vector('Stable across processes, surely').tobytes()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1


async def test_a_query_sharing_words_ranks_its_passage_first() -> None:
    embedder = HashEmbedder()
    passages = await embedder.embed(PASSAGES)
    queries = ["when are invoices paid", "goldfish pond", "liveness probe fails", "vegetarian lunch"]
    scores = (await embedder.embed(queries)) @ passages.T
    assert list(scores.argmax(axis=1)) == [0, 1, 2, 3]


def test_vector_literal_round_trips_float32() -> None:
    vector = np.random.default_rng(0).standard_normal(STORAGE_DIM).astype(np.float32)
    literal = vector_literal(vector)
    assert literal.startswith("[") and literal.endswith("]")
    parsed = np.array([float(x) for x in literal[1:-1].split(",")], dtype=np.float32)
    assert np.array_equal(parsed, vector)


def test_build_embedder_chooses_the_provider() -> None:
    assert isinstance(build_embedder(EmbeddingSettings(embedding_provider="hash")).inner, HashEmbedder)
    openai = build_embedder(
        EmbeddingSettings(
            embedding_provider="openai",
            embedding_base_url="http://127.0.0.1:9/v1",
            embedding_model="all-minilm",
            embedding_api_key="k",
        )
    ).inner
    assert isinstance(openai, OpenAIEmbedder)
    assert (openai.model_name, openai.dim, openai.url) == (
        "all-minilm",
        384,
        "http://127.0.0.1:9/v1/embeddings",
    )


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"embedding_model": "m"}, "EMBEDDING_BASE_URL"),
        ({"embedding_base_url": "http://x"}, "EMBEDDING_MODEL"),
    ],
)
def test_build_embedder_names_the_missing_variable(settings: dict[str, str], variable: str) -> None:
    with pytest.raises(EmbeddingConfigurationError, match=f"^{variable} is required") as info:
        build_embedder(EmbeddingSettings(embedding_provider="openai", **settings))
    assert isinstance(info.value, PermanentEmbeddingError)
