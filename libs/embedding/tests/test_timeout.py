"""The deadline of one embedding call: a hanging or endlessly retrying provider fails in time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rag_embedding import (
    EmbeddingTimeoutError,
    HashEmbedder,
    TimeoutEmbedder,
    TransientEmbeddingError,
    build_embedder,
)
from rag_embedding.settings import EmbeddingSettings
from rag_testing.fake_embeddings import FakeEmbeddings, Scripted

pytestmark = pytest.mark.anyio


def openai_settings(url: str, timeout: float) -> EmbeddingSettings:
    return EmbeddingSettings(
        embedding_provider="openai",
        embedding_base_url=url,
        embedding_model="m",
        embedding_timeout_seconds=timeout,
    )


async def test_a_hanging_service_fails_after_the_timeout(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(delay=20)]
    embedder = build_embedder(openai_settings(fake.base_url, 0.5))
    started = time.monotonic()
    with pytest.raises(EmbeddingTimeoutError, match=r"within 0\.5 seconds") as info:
        await embedder.embed(["a question"])
    assert time.monotonic() - started < 3
    assert isinstance(info.value, TransientEmbeddingError)  # a job retries later


async def test_the_timeout_bounds_all_retries_together(fake: FakeEmbeddings) -> None:
    # Each answer is a quick 503 with Retry-After 1: alone, six attempts would take ~5 s.
    fake.script = [Scripted(status=503, headers={"Retry-After": "1"}) for _ in range(10)]
    embedder = build_embedder(openai_settings(fake.base_url, 1.5))
    started = time.monotonic()
    with pytest.raises(EmbeddingTimeoutError):
        await embedder.embed(["a question"])
    assert time.monotonic() - started < 4
    assert 2 <= len(fake.requests) <= 3


async def test_a_call_within_the_deadline_is_unchanged() -> None:
    embedder = TimeoutEmbedder(HashEmbedder(), 5)
    assert (embedder.model_name, embedder.dim) == (HashEmbedder().model_name, 384)
    wrapped = await embedder.embed(["same text"])
    assert np.array_equal(wrapped, await HashEmbedder().embed(["same text"]))


def test_every_built_embedder_carries_the_setting() -> None:
    built = build_embedder(EmbeddingSettings(embedding_provider="hash", embedding_timeout_seconds=7))
    assert isinstance(built, TimeoutEmbedder) and built.seconds == 7
    with pytest.raises(ValueError):
        TimeoutEmbedder(HashEmbedder(), 0)
