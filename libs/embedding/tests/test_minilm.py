"""`minilm`: the numpy forward pass reproduces sentence-transformers' published numbers.

Reference values: sentence-transformers documentation, "Semantic Textual Similarity"
(docs/sentence_transformer/usage/semantic_textual_similarity.rst, also sbert.net), which
prints these cosine similarities and Manhattan distances for all-MiniLM-L6-v2 to 4
decimals. Matching them to 1e-3 checks the whole path at once: tokenizer, weight layout,
attention, GELU, LayerNorm, mean pooling and normalisation.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest

from rag_embedding import EmbeddingConfigurationError, MiniLMEmbedder, build_embedder
from rag_embedding.minilm import find_model_dir, load_model
from rag_embedding.settings import EmbeddingSettings

try:
    find_model_dir()
except EmbeddingConfigurationError as exc:  # pragma: no cover - depends on the install
    pytest.skip(f"model package not installed: {exc}", allow_module_level=True)

pytestmark = pytest.mark.anyio

SEMANTIC_SET = Path(__file__).with_name("semantic_set.json")


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    embedder = build_embedder(EmbeddingSettings(embedding_provider="minilm")).inner
    assert isinstance(embedder, MiniLMEmbedder)
    assert (embedder.model_name, embedder.dim) == ("all-MiniLM-L6-v2", 384)
    return embedder


async def test_reproduces_the_documented_sts_scores(embedder: MiniLMEmbedder) -> None:
    left = ["The new movie is awesome", "The cat sits outside", "A man is playing guitar"]
    right = ["The dog plays in the garden", "The new movie is so great", "A woman watches TV"]
    expected = [
        [0.0543, 0.8939, -0.0502],
        [0.2838, -0.0029, 0.1310],
        [0.2277, -0.0136, -0.0327],
    ]
    scores = (await embedder.embed(left)) @ (await embedder.embed(right)).T
    np.testing.assert_allclose(scores, expected, atol=1e-3)


async def test_reproduces_the_documented_similarity_and_manhattan_matrices(embedder: MiniLMEmbedder) -> None:
    vectors = await embedder.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    np.testing.assert_allclose(
        vectors @ vectors.T,
        [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]],
        atol=1e-3,
    )
    # Manhattan distance sums 384 coordinate differences: it catches per-coordinate
    # errors that a cosine could average away.
    manhattan = -np.abs(vectors[:, None, :] - vectors[None, :, :]).sum(axis=-1)
    np.testing.assert_allclose(
        manhattan,
        [[0.0, -12.6269, -20.2167], [-12.6269, 0.0, -20.1288], [-20.2167, -20.1288, 0.0]],
        atol=2e-3,
    )


def test_batching_and_packing_do_not_change_a_vector(embedder: MiniLMEmbedder) -> None:
    texts = [
        "short",
        "a somewhat longer sentence about embeddings and vectors",
        "x " * 300,
        "mid length text",
    ]
    together = embedder.embed_sync(texts)
    alone = np.vstack([embedder.embed_sync([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed_sync([]).shape == (0, 384)


def test_texts_are_truncated_at_256_word_pieces(embedder: MiniLMEmbedder) -> None:
    head = " ".join(f"word{i}" for i in range(300))  # far more than 256 word pieces
    a, b = embedder.embed_sync([head + " apples and pears", head + " a completely different ending"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert len(load_model().tokenizer.encode(head).ids) == 256


def test_weights_load_once_per_process(embedder: MiniLMEmbedder) -> None:
    other = MiniLMEmbedder(batch_size=4, threads=1)
    assert load_model() is load_model(other.model_dir)
    np.testing.assert_allclose(
        other.embed_sync(["same model"]), embedder.embed_sync(["same model"]), atol=1e-6
    )


async def test_embedding_does_not_block_the_event_loop(embedder: MiniLMEmbedder) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await embedder.embed(["a sentence about the weather"] * 64)
    finally:
        task.cancel()
    assert ticks >= 3


_STOP = set(
    "a an and are as at be but by can did do does for from has have he her his how i if in is it its "
    "may me my of on or our she so that the their them they this to was were what when where which who "
    "why will with you your".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


async def test_paraphrased_queries_find_their_passage_in_the_top_3(embedder: MiniLMEmbedder) -> None:
    data = json.loads(SEMANTIC_SET.read_text())
    passages: list[str] = data["passages"]
    queries: list[dict[str, object]] = data["queries"]
    assert len(passages) >= 8 and len(queries) >= 8
    for item in queries:
        shared = _content_words(str(item["query"])) & _content_words(passages[int(str(item["passage"]))])
        assert not shared, f"query {item['query']!r} shares {shared} with its passage"

    passage_vectors = await embedder.embed(passages)
    query_vectors = await embedder.embed([str(q["query"]) for q in queries])
    scores = query_vectors @ passage_vectors.T
    misses = []
    for i, item in enumerate(queries):
        top3 = list(np.argsort(-scores[i])[:3])
        if int(str(item["passage"])) not in top3:
            misses.append((item["query"], top3))
    assert not misses, misses
