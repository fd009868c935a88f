"""Answer providers and delta coalescing (pure logic and a real local HTTP server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from rag_api.answering.coalesce import coalesce
from rag_api.answering.history import HISTORY_CHARS, Turn, bounded
from rag_api.answering.kind import cited
from rag_api.answering.providers import (
    CONDENSE_PROMPT,
    NOTHING_FOUND,
    ExtractiveProvider,
    LLMPermanentError,
    LLMStreamError,
    LLMTransientError,
    OpenAIChatProvider,
)
from rag_api.search import MAX_QUERY_CHARS, Hit
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


# Follow-up questions: the search query and the answer read the recent turns.

NORWAY_TURNS = (
    Turn("user", "Tell me about Norway"),
    Turn("assistant", "From the workspace's documents:\n\nNorway is a country of fjords [1]"),
)


async def test_extractive_search_query_puts_the_last_user_turns_before_the_question() -> None:
    provider = ExtractiveProvider()
    assert await provider.search_query("What is its capital?", ()) == "What is its capital?"
    assert await provider.search_query("What is its capital?", NORWAY_TURNS) == (
        "Tell me about Norway\nWhat is its capital?"
    )
    many = tuple(Turn("user", f"question {n}") for n in range(10))
    assert await provider.search_query("q?", many) == "question 8\nquestion 9\nq?"  # the last two
    # Bounded by the search's limit: the question whole, the oldest text cut.
    huge = (Turn("user", "x" * 5000),)
    query = await provider.search_query("What is its capital?", huge)
    assert len(query) == MAX_QUERY_CHARS and query.endswith("\nWhat is its capital?")


async def test_extractive_follow_up_quotes_the_passage_on_the_conversations_topic() -> None:
    passages = [
        hit("The capital of France is Paris, on the Seine.", "france.txt", 1),
        hit("The capital of Norway is Oslo. Norway has long fjords.", "norway.txt", 2),
    ]
    provider = ExtractiveProvider()
    alone = provider.answer("What is its capital?", passages)
    assert {c.filename for c in cited(alone, passages)} == {"france.txt", "norway.txt"}
    follow_up = provider.answer("What is its capital?", passages, NORWAY_TURNS)
    assert "Oslo" in follow_up and "Paris" not in follow_up
    assert [c.filename for c in cited(follow_up, passages)] == ["norway.txt"]
    # A topic no passage shares falls back to every passage.
    assert provider.answer("What is its capital?", passages, (Turn("user", "Tell me about Peru"),)) == alone


def test_history_is_bounded_in_turns_and_characters() -> None:
    newest_first = [Turn("assistant", "a" * 3000), Turn("user", "b" * 3000), Turn("assistant", "c")]
    kept = bounded(newest_first)
    assert [t.role for t in kept] == ["user", "assistant"]  # oldest first, the oldest dropped
    assert sum(len(t.content) for t in kept) == HISTORY_CHARS
    assert kept[1].content == "a" * 3000 and kept[0].content == "b" * (HISTORY_CHARS - 3000)
    assert bounded([]) == ()


async def test_openai_follow_up_condenses_with_one_extra_call_and_sends_the_history() -> None:
    passages = [hit("The capital of Norway is Oslo.", "norway.txt")]
    with fake_llm(["stream"], "") as llm:
        llm.respond = lambda body: "capital of Norway" if CONDENSE_PROMPT in str(body) else "Oslo [1]."
        provider = OpenAIChatProvider(llm.url, "m", retry=FAST)
        assert await provider.search_query("What is its capital?", ()) == "What is its capital?"
        assert llm.requests == []  # no history: no extra call
        assert await provider.search_query("What is its capital?", NORWAY_TURNS) == "capital of Norway"
        assert (
            "".join(await collect(provider.stream("What is its capital?", passages, NORWAY_TURNS)))
            == "Oslo [1]."
        )
    condense, answer = llm.requests
    assert "Tell me about Norway" in str(condense["messages"]) and "What is its capital?" in str(
        condense["messages"]
    )
    roles = [m["role"] for m in answer["messages"]]  # type: ignore[attr-defined]
    assert roles == ["system", "user", "assistant", "user"]
    assert answer["messages"][1]["content"] == "Tell me about Norway"  # type: ignore[index]
