"""`POST /v1/embeddings` against a real HTTP server on loopback (rag_testing's fake, scripted).

What is retried, how long it waits, what the errors say (never the URL, key or body) and
what the operator finds in the log.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from rag_embedding.hashing import hash_vector
from rag_openai import (
    MalformedAnswer,
    OpenAIClient,
    OpenAIError,
    PermanentError,
    StreamBroken,
    TransientError,
    endpoint_url,
)
from rag_retry import RetryPolicy
from rag_testing.fake_embeddings import FakeEmbeddings, Scripted

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(base_seconds=0.01, max_seconds=0.05)
KEY = "sk-secret-key"


def client_for(url: str, **kwargs: Any) -> OpenAIClient:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("failure_event", "test_request_failed")
    return OpenAIClient(url, KEY, **kwargs)


async def embed(client: OpenAIClient, texts: list[str]) -> list[list[float]]:
    async with client.session() as api:
        return await api.embeddings("test-model", texts)


def assert_safe(error: OpenAIError, url: str) -> None:
    """No host, port, scheme, key or upstream body in what callers may show."""
    host_port = url.removeprefix("http://")
    for needle in (host_port, host_port.split(":")[1], "127.0.0.1", "http", "scripted failure", KEY):
        assert needle not in str(error), (needle, str(error))


async def test_vectors_come_back_in_input_order_with_the_key_and_model(fake: FakeEmbeddings) -> None:
    texts = [f"text {i}" for i in range(10)]
    rows = await embed(client_for(fake.base_url), texts)
    assert rows == [pytest.approx(hash_vector(t).tolist(), abs=1e-6) for t in texts]
    (request,) = fake.requests
    assert (request["path"], request["auth"], request["model"]) == (
        "/v1/embeddings",
        f"Bearer {KEY}",
        "test-model",
    )


async def test_one_session_reuses_its_connection_across_requests(fake: FakeEmbeddings) -> None:
    async with client_for(fake.base_url).session() as api:
        for batch in (["a"], ["b", "c"]):
            assert len(await api.embeddings("m", batch)) == len(batch)
    assert [r["input"] for r in fake.requests] == [["a"], ["b", "c"]]


async def test_429_and_5xx_are_retried_until_an_answer(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(429, {"Retry-After": "0"}), Scripted(503), Scripted(500), Scripted(502)]
    assert len(await embed(client_for(fake.base_url), ["x"])) == 1
    assert len(fake.requests) == 5


async def test_retry_after_wins_over_a_longer_backoff(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(429, {"Retry-After": "1"})]
    slow = RetryPolicy(base_seconds=30.0, max_seconds=30.0)
    started = time.monotonic()
    await embed(client_for(fake.base_url, retry=slow), ["x"])
    assert 0.9 <= time.monotonic() - started < 10


async def test_retry_after_of_a_503_is_honoured_up_to_the_cap(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(503, {"Retry-After": "3600"})]
    capped = RetryPolicy(base_seconds=0.01, max_seconds=0.01, retry_after_max_seconds=0.5)
    started = time.monotonic()
    await embed(client_for(fake.base_url, retry=capped), ["x"])
    assert 0.45 <= time.monotonic() - started < 5  # not an hour


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_are_permanent_at_once(fake: FakeEmbeddings, status: int) -> None:
    fake.script = [Scripted(status)]
    with pytest.raises(PermanentError) as info:
        await embed(client_for(fake.base_url), ["x"])
    assert (info.value.status, str(info.value)) == (status, f"HTTP {status}")
    assert len(fake.requests) == 1
    assert_safe(info.value, fake.base_url)


async def test_spent_attempts_are_transient_and_name_the_last_failure(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(500) for _ in range(10)]
    with pytest.raises(TransientError) as info:
        await embed(client_for(fake.base_url, max_attempts=3), ["x"])
    assert type(info.value) is TransientError
    assert (info.value.reason, info.value.attempts) == ("HTTP 500", 3)
    assert len(fake.requests) == 3
    assert_safe(info.value, fake.base_url)


async def test_a_read_timeout_is_retried(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(delay=1.0)]
    rows = await embed(client_for(fake.base_url, timeout=httpx.Timeout(0.3)), ["slow"])
    assert len(rows) == 1 and len(fake.requests) == 2


async def test_connection_refused_is_transient_and_names_the_exception_class_only() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed when the block ends
    with pytest.raises(TransientError) as info:
        await embed(client_for(url, max_attempts=2), ["x"])
    assert (str(info.value), info.value.attempts) == ("ConnectError", 2)
    assert not isinstance(info.value, StreamBroken)
    assert_safe(info.value, url)


@pytest.mark.parametrize(
    "body", [b"<html>gateway</html>", b'{"data": 5}', b'{"data": [{"embedding": "no"}]}']
)
async def test_an_unreadable_200_is_a_malformed_answer(fake: FakeEmbeddings, body: bytes) -> None:
    fake.script = [Scripted(200, body=body)]
    with pytest.raises(MalformedAnswer) as info:
        await embed(client_for(fake.base_url), ["x"])
    assert isinstance(info.value, TransientError) and len(fake.requests) == 1
    assert_safe(info.value, fake.base_url)


async def test_the_log_has_the_details_the_error_may_not_show(fake: FakeEmbeddings) -> None:
    fake.script = [Scripted(500), Scripted(401)]
    with capture_logs() as logs, pytest.raises(PermanentError):
        await embed(client_for(fake.base_url), ["x"])
    assert [(e["event"], e["status"], e["attempt"]) for e in logs] == [
        ("test_request_failed", 500, 1),
        ("test_request_failed", 401, 2),
    ]
    assert all(e["url"] == fake.base_url + "/v1/embeddings" and "scripted failure" in e["body"] for e in logs)
    assert KEY not in repr(logs)


def test_endpoint_urls_accept_the_server_its_v1_or_the_endpoint() -> None:
    for base in ("https://api.example.com", "https://api.example.com/", "https://api.example.com/v1/"):
        assert endpoint_url(base, "embeddings") == "https://api.example.com/v1/embeddings"
    assert endpoint_url("http://h/v1/embeddings", "embeddings") == "http://h/v1/embeddings"
    assert endpoint_url("http://h/v1", "chat/completions") == "http://h/v1/chat/completions"
