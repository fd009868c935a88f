"""Answer providers and delta coalescing (pure logic and a real local HTTP server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from rag_api.answering.coalesce import coalesce
from rag_api.answering.kind import cited
from rag_api.answering.providers import (
    NOTHING_FOUND,
    ExtractiveProvider,
    LLMPermanentError,
    LLMStreamError,
    LLMTransientError,
    OpenAIChatProvider,
)
from rag_api.search import Hit
from rag_retry import RetryPolicy
from rag_testing.fake_llm import fake_llm

FAST = RetryPolicy(base_seconds=0.01, max_seconds=0.05)

pytestmark = pytest.mark.anyio


def hit(text: str, name: str = "a.txt", n: int = 1) -> Hit:
    return Hit(chunk_id=n, document_id=uuid.uuid4(), filename=name, ordinal=0, text=text, score=0.1)


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [piece async for piece in stream]


async def test_coalescing_merges_tokens_by_size_and_time_and_drops_nothing() -> None:
    async def tokens() -> AsyncIterator[str]:
        for _ in range(1000):
            yield "ab"

    ticks = iter(range(100000))
    deltas = await collect(coalesce(tokens(), interval=1e9, max_chars=200, clock=lambda: next(ticks)))
    assert "".join(deltas) == "ab" * 1000
    assert len(deltas) == 10  # 2,000 characters in 200-character deltas

    ticks2 = iter(range(100000))
    by_time = await collect(coalesce(tokens(), interval=50, max_chars=10**9, clock=lambda: next(ticks2)))
    assert "".join(by_time) == "ab" * 1000 and 15 <= len(by_time) <= 25


async def test_extractive_answer_quotes_relevant_sentences_with_citations() -> None:
    passages = [
        hit("The Eiffel Tower is in Paris. It was completed in 1889 for the World's Fair.", "paris.txt", 1),
        hit("Bananas are rich in potassium.", "food.txt", 2),
    ]
    text = ExtractiveProvider().answer("When was the Eiffel Tower completed?", passages)
    assert "completed in 1889" in text and "[1]" in text
    assert "[2]" not in text
    assert [c.filename for c in cited(text, passages)] == ["paris.txt"]


async def test_extractive_stream_adds_up_to_exactly_the_answer() -> None:
    # `completed` carries the concatenation of the deltas unstripped: no trailing space.
    passages = [hit("The Eiffel Tower is in Paris. It was completed in 1889.", "paris.txt", 1)]
    provider = ExtractiveProvider()
    pieces = await collect(provider.stream("When was the tower completed?", passages))
    assert "".join(pieces) == provider.answer("When was the tower completed?", passages)


async def test_extractive_answer_says_plainly_when_nothing_is_relevant() -> None:
    assert (
        ExtractiveProvider().answer("quantum chromodynamics?", [hit("Bananas are yellow.")]) == NOTHING_FOUND
    )
    assert ExtractiveProvider().answer("anything", []) == NOTHING_FOUND


async def test_openai_provider_streams_and_retries_429_before_the_first_token() -> None:
    answer = "Paris is the capital of France [1]."
    with fake_llm(["429", "429", "stream"], answer) as llm:
        provider = OpenAIChatProvider(llm.url, "test-model", "sk-test", retry=FAST)
        pieces = await collect(
            provider.stream("Capital of France?", [hit("Paris is the capital of France.")])
        )
    assert "".join(pieces) == answer
    assert len(llm.requests) == 3
    request = llm.requests[-1]
    assert request["stream"] is True and request["model"] == "test-model"
    assert "[1] (a.txt) Paris is the capital" in str(request["messages"])


async def test_openai_provider_reports_a_stream_that_dies_midway() -> None:
    with fake_llm(["die"], "x" * 300) as llm:
        provider = OpenAIChatProvider(llm.url, "m", retry=FAST)
        with pytest.raises(LLMStreamError, match="broke off"):
            await collect(provider.stream("q", []))


async def test_openai_provider_refusal_is_permanent() -> None:
    with fake_llm(["401"], "") as llm:
        provider = OpenAIChatProvider(llm.url, "m", retry=FAST)
        with pytest.raises(LLMPermanentError, match="401"):
            await collect(provider.stream("q", []))
    assert len(llm.requests) == 1  # not retried


async def test_openai_provider_gives_up_as_transient_after_its_attempts() -> None:
    with fake_llm(["503"], "") as llm:
        provider = OpenAIChatProvider(llm.url, "m", retry=FAST, max_attempts=3)
        with pytest.raises(LLMTransientError) as info:
            await collect(provider.stream("q", []))
    assert str(info.value) == "the model endpoint is unavailable (HTTP 503)"
    assert not isinstance(info.value, LLMStreamError) and len(llm.requests) == 3


async def test_openai_provider_honours_retry_after() -> None:
    slow = RetryPolicy(base_seconds=30.0, max_seconds=30.0)
    with fake_llm(["429 retry-after=1", "stream"], "ok") as llm:
        started = time.monotonic()
        assert "".join(await collect(OpenAIChatProvider(llm.url, "m", retry=slow).stream("q", []))) == "ok"
    assert 0.9 <= time.monotonic() - started < 10
