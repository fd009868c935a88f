"""Streamed `POST /v1/chat/completions` against a real SSE server on loopback (rag_testing.fake_llm)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rag_openai import OpenAIClient, PermanentError, StreamBroken, TransientError, sse_text
from rag_retry import RetryPolicy
from rag_testing.fake_llm import fake_llm

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(base_seconds=0.01, max_seconds=0.05)
MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def client_for(url: str, **kwargs: Any) -> OpenAIClient:
    kwargs.setdefault("retry", FAST)
    return OpenAIClient(url, "sk-test", **kwargs)


async def collect(client: OpenAIClient) -> list[str]:
    async with client.session() as api:
        return [text async for text in api.chat_stream("test-model", MESSAGES)]


async def test_streams_the_deltas_and_retries_429_before_the_first_token() -> None:
    answer = "Paris is the capital of France [1]."
    with fake_llm(["429", "500", "stream"], answer) as llm:
        pieces = await collect(client_for(llm.url))
    assert "".join(pieces) == answer and len(pieces) > 1
    assert len(llm.requests) == 3
    assert llm.requests[-1] == {"model": "test-model", "stream": True, "messages": MESSAGES}


@pytest.mark.parametrize("status", ["429", "503"])
async def test_retry_after_is_honoured(status: str) -> None:
    slow = RetryPolicy(base_seconds=30.0, max_seconds=30.0)
    with fake_llm([f"{status} retry-after=1", "stream"], "ok") as llm:
        started = time.monotonic()
        assert "".join(await collect(client_for(llm.url, retry=slow))) == "ok"
    assert 0.9 <= time.monotonic() - started < 10


async def test_a_stream_that_dies_midway_is_broken_and_not_retried() -> None:
    with fake_llm(["die"], "x" * 300) as llm:
        with pytest.raises(StreamBroken) as info:
            await collect(client_for(llm.url))
    assert isinstance(info.value, TransientError) and info.value.reason == "RemoteProtocolError"
    assert len(llm.requests) == 1


async def test_a_refusal_is_permanent_and_not_retried() -> None:
    with fake_llm(["401"], "") as llm:
        with pytest.raises(PermanentError) as info:
            await collect(client_for(llm.url))
    assert info.value.status == 401 and len(llm.requests) == 1


async def test_spent_attempts_are_transient() -> None:
    with fake_llm(["503"], "") as llm:
        with pytest.raises(TransientError) as info:
            await collect(client_for(llm.url, max_attempts=3))
    assert type(info.value) is TransientError
    assert (info.value.reason, info.value.attempts, len(llm.requests)) == ("HTTP 503", 3, 3)


async def test_a_reader_that_stops_early_closes_the_stream() -> None:
    with fake_llm(["stream"], "abcdefghij" * 10) as llm:
        async with client_for(llm.url).session() as api:
            stream = api.chat_stream("m", MESSAGES)
            first = await anext(stream)
            await stream.aclose()  # type: ignore[attr-defined]
    assert first == "abc"


def test_sse_lines_without_content_are_empty_and_done_ends() -> None:
    assert sse_text(": keep-alive") == ""
    assert sse_text("event: ping") == ""
    assert sse_text('data: {"choices":[{"delta":{"content":"hi"}}]}') == "hi"
    assert sse_text('data: {"choices":[{"delta":{"role":"assistant"}}]}') == ""
    assert sse_text('data: {"choices":[]}') == ""
    assert sse_text("data: not json") == ""
    assert sse_text("data: [DONE]") is None
