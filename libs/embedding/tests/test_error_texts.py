"""The `openai` embedder's errors may reach users: they name the failure, never the URL or the body."""

from __future__ import annotations

import socket

import pytest

from rag_embedding import OpenAIEmbedder, PermanentEmbeddingError, TransientEmbeddingError
from rag_retry import RetryPolicy
from rag_testing.fake_embeddings import FakeEmbeddings, Scripted

pytestmark = pytest.mark.anyio


def embedder_for(url: str, max_attempts: int = 6) -> OpenAIEmbedder:
    retry = RetryPolicy(base_seconds=0.01, max_seconds=0.05)
    return OpenAIEmbedder(url, "m", "sk-secret-key", retry=retry, max_attempts=max_attempts)


def assert_no_insides(text: str, url: str) -> None:
    host_port = url.removeprefix("http://")
    for needle in (
        host_port,
        host_port.split(":")[1],
        "127.0.0.1",
        "http",
        "scripted failure",
        "sk-secret-key",
    ):
        assert needle not in text, (needle, text)


@pytest.mark.parametrize("status", [400, 401])
async def test_a_refusal_names_the_status_only(fake: FakeEmbeddings, status: int) -> None:
    fake.script = [Scripted(status)]
    with pytest.raises(PermanentEmbeddingError) as info:
        await embedder_for(fake.base_url).embed(["x"])
    assert str(info.value) == f"it answered HTTP {status}"
    assert_no_insides(str(info.value), fake.base_url)


async def test_spent_retries_name_the_last_status_only(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(503) for _ in range(3)]
    with pytest.raises(TransientEmbeddingError) as info:
        await embedder_for(fake.base_url, max_attempts=3).embed(["x"])
    assert str(info.value) == "the embedding service still failed after 3 attempts (HTTP 503)"
    assert_no_insides(str(info.value), fake.base_url)


async def test_a_connection_error_names_its_class_only() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(TransientEmbeddingError) as info:
        await embedder_for(url, max_attempts=2).embed(["x"])
    assert str(info.value) == "the embedding service still failed after 2 attempts (ConnectError)"
    assert_no_insides(str(info.value), url)
