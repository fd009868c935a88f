"""`openai` provider against a real HTTP server on loopback (stdlib, in a thread).

The server follows a script of answers, one per request, then answers normally: that is
how a rate-limited or failing endpoint is played without mocking the client.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import numpy as np
import pytest

from rag_embedding import (
    EmbeddingConfigurationError,
    OpenAIEmbedder,
    PermanentEmbeddingError,
    TransientEmbeddingError,
)
from rag_embedding.hashing import hash_vector
from rag_retry import RetryPolicy
from rag_testing.fake_embeddings import FakeEmbeddings, Scripted

pytestmark = pytest.mark.anyio


def embedder_for(url: str, **kwargs: Any) -> OpenAIEmbedder:
    kwargs.setdefault("retry", RetryPolicy(base_seconds=0.01, max_seconds=0.05))
    return OpenAIEmbedder(url, "test-embedding-model", "secret", **kwargs)


def expected(texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.vstack([hash_vector(t) for t in texts])


async def test_three_429_then_success_returns_the_embeddings(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(429, {"Retry-After": "0"}) for _ in range(3)]
    texts = ["first passage", "second passage"]
    vectors = await embedder_for(fake.base_url).embed(texts)
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)
    assert len(fake.requests) == 4


async def test_server_errors_are_retried_with_backoff(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(503), Scripted(500), Scripted(502)]
    vectors = await embedder_for(fake.base_url).embed(["x"])
    np.testing.assert_allclose(vectors, expected(["x"]), atol=1e-6)
    assert len(fake.requests) == 4


async def test_retry_after_takes_precedence_over_backoff(fake: FakeEmbeddings) -> None:
    # With backoff alone the wait could reach 30 s; Retry-After says 1 s.
    fake.script = [Scripted(429, {"Retry-After": "1"})]
    started = time.monotonic()
    await embedder_for(fake.base_url, retry=RetryPolicy(base_seconds=30.0, max_seconds=30.0)).embed(["x"])
    assert 0.9 <= time.monotonic() - started < 10


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_is_permanent_and_not_retried(fake: FakeEmbeddings, status: int) -> None:
    fake.script = [Scripted(status)]
    with pytest.raises(PermanentEmbeddingError, match=f"HTTP {status}"):
        await embedder_for(fake.base_url).embed(["x"])
    assert len(fake.requests) == 1


async def test_exhausted_retries_raise_a_transient_error(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(500) for _ in range(10)]
    with pytest.raises(TransientEmbeddingError, match="after 3 attempts"):
        await embedder_for(fake.base_url, max_attempts=3).embed(["x"])
    assert len(fake.requests) == 3


async def test_a_read_timeout_is_retried(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(delay=1.0)]
    vectors = await embedder_for(fake.base_url, timeout=httpx.Timeout(0.3)).embed(["slow"])
    np.testing.assert_allclose(vectors, expected(["slow"]), atol=1e-6)


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(TransientEmbeddingError, match="ConnectError"):
        await embedder_for(f"http://127.0.0.1:{port}", max_attempts=2).embed(["x"])


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_batches_of_64_in_order_on_v1_embeddings(fake: FakeEmbeddings, suffix: str) -> None:
    texts = [f"text number {i}" for i in range(130)]
    vectors = await embedder_for(fake.base_url + suffix).embed(texts)
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)
    assert [len(r["input"]) for r in fake.requests] == [64, 64, 2]
    assert {r["path"] for r in fake.requests} == {"/v1/embeddings"}
    assert {r["auth"] for r in fake.requests} == {"Bearer secret"}
    assert {r["model"] for r in fake.requests} == {"test-embedding-model"}


async def test_a_model_of_another_dimension_is_a_configuration_error(fake: FakeEmbeddings) -> None:
    fake.dim = 1536
    with pytest.raises(
        EmbeddingConfigurationError, match=r"EMBEDDING_MODEL=test-embedding-model .*vector\(384\)"
    ):
        await embedder_for(fake.base_url).embed(["x"])
    assert len(fake.requests) == 1


async def test_no_texts_no_request(fake: FakeEmbeddings) -> None:
    assert (await embedder_for(fake.base_url).embed([])).shape == (0, 384)
    assert fake.requests == []


async def test_an_unreadable_answer_is_transient(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(200, body=b"<html>bad gateway</html>")]
    with pytest.raises(TransientEmbeddingError, match="could not be read"):
        await embedder_for(fake.base_url).embed(["x"])
    assert len(fake.requests) == 1
