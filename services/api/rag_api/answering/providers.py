"""Answer providers: turn a question and retrieved passages into streamed text.

`extractive` needs nothing outside this process: it quotes the sentences of the
best passages that share the most words with the question, each with its `[n]`
citation, and says so plainly when nothing relevant was found. `openai` streams
from any OpenAI-compatible `/v1/chat/completions` (rag_openai's client) with a
system prompt that demands citations; 429/5xx/connection errors before the first
token are retried there with backoff, honouring `Retry-After`; a failure after the
first token surfaces as `LLMStreamError` (the job runtime retries the whole answer,
content reset, up to JOB_MAX_ATTEMPTS).

Follow-up questions (rag_api.answering.history): `search_query` turns a question and the
conversation's recent turns into what is searched. `extractive` puts the last user turns
before the question; it then quotes from the passages that share a word with those earlier
turns when any of them answers (the conversation's topic: "its capital" after "Norway" is
Norway's). `openai` asks the model once more, without streaming its text to anyone, to
condense the turns into a standalone query, and sends the bounded history with the answer's
prompt. Without history neither does anything new (no extra call).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import httpx

from rag_api.answering.history import Turn, combined_query
from rag_api.search import MAX_QUERY_CHARS, Hit
from rag_api.settings import ApiSettings
from rag_openai import DEFAULT_TIMEOUT, OpenAIClient, PermanentError, StreamBroken, TransientError
from rag_retry import RetryPolicy

DEFAULT_RETRY = RetryPolicy(base_seconds=0.5, max_seconds=20.0)
NOTHING_FOUND = (
    "I could not find anything about this in the workspace's documents. "
    "Try other words, or upload a document that covers it."
)
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STOP = frozenset(
    "a an and are as at be by for from has have how i in is it of on or that the this to was what when where which"
    " who why will with does do did can you your me my we our".split()
)


class LLMTransientError(Exception):
    """The model endpoint failed in a way worth retrying later (its retries are spent).

    The messages of these errors name the failure (HTTP status, exception class), never
    the endpoint's URL or the body it answered: those are logged (`llm_request_failed`).
    """


class LLMPermanentError(Exception):
    """The request can never succeed as configured (bad model, auth refused)."""


class LLMStreamError(LLMTransientError):
    """The stream broke after text was produced: the answer restarts from scratch."""


class AnswerProvider(Protocol):
    async def search_query(self, question: str, history: Sequence[Turn]) -> str:
        """What to search for: the question, made standalone with the recent turns."""
        ...

    def stream(
        self, question: str, passages: Sequence[Hit], history: Sequence[Turn] = ()
    ) -> AsyncIterator[str]: ...


def _terms(text: str) -> set[str]:
    return {w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOP and len(w) > 1}


class ExtractiveProvider:
    """Quote the most relevant sentences of the best passages, with citations."""

    def __init__(self, max_sentences: int = 4) -> None:
        self.max_sentences = max_sentences

    async def search_query(self, question: str, history: Sequence[Turn]) -> str:
        return combined_query(question, history, MAX_QUERY_CHARS)

    async def stream(
        self, question: str, passages: Sequence[Hit], history: Sequence[Turn] = ()
    ) -> AsyncIterator[str]:
        """The answer word by word; the pieces add up to exactly `answer` (no trailing space)."""
        for n, piece in enumerate(self.answer(question, passages, history).split(" ")):
            yield piece if n == 0 else " " + piece
            await asyncio.sleep(0)

    def answer(self, question: str, passages: Sequence[Hit], history: Sequence[Turn] = ()) -> str:
        wanted = _terms(question)
        topic = _terms(" ".join(t.content for t in history if t.role == "user")) - wanted
        on_topic = [(n, hit) for n, hit in enumerate(passages, start=1) if topic & _terms(hit.text)]
        everything = list(enumerate(passages, start=1))
        return self._quote(wanted, on_topic) or self._quote(wanted, everything) or NOTHING_FOUND

    def _quote(self, wanted: set[str], passages: Sequence[tuple[int, Hit]]) -> str | None:
        """The best sentences of `passages` (numbered as retrieved) for `wanted`, or None."""
        scored: list[tuple[float, int, int, str]] = []
        for n, hit in passages:
            for position, sentence in enumerate(_SENTENCE.split(hit.text.strip())):
                overlap = len(wanted & _terms(sentence))
                if overlap:
                    # Earlier passages (better ranked) win ties.
                    scored.append((overlap - n * 0.01, n, position, " ".join(sentence.split())))
        if not scored:
            return None
        best = sorted(scored, key=lambda s: -s[0])[: self.max_sentences]
        best.sort(key=lambda s: (s[1], s[2]))  # read in document order
        lines = [f"{sentence} [{n}]" for _, n, _, sentence in best]
        return "From the workspace's documents:\n\n" + "\n".join(lines)


SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages provided. After every claim, cite the "
    "passage it comes from as [n]. If the passages do not contain the answer, say plainly that the "
    "documents do not cover it. Be concise."
)


CONDENSE_PROMPT = (
    "Rewrite the user's last question as one standalone search query that can be understood "
    "without the conversation: replace pronouns and references with what they refer to. Answer "
    "with the query only, no quotes, no explanation."
)


def build_messages(
    question: str, passages: Sequence[Hit], history: Sequence[Turn] = ()
) -> list[dict[str, str]]:
    """The answer's prompt: the system prompt, the bounded history as earlier turns, then the
    passages and the question (citations number the passages of this question only)."""
    context = "\n\n".join(f"[{n}] ({hit.filename}) {hit.text}" for n, hit in enumerate(passages, start=1))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        *({"role": t.role, "content": t.content} for t in history),
        {"role": "user", "content": f"Passages:\n\n{context or '(none)'}\n\nQuestion: {question}"},
    ]


def condense_messages(question: str, history: Sequence[Turn]) -> list[dict[str, str]]:
    """The one extra call of a follow-up: the turns as a transcript, then the question."""
    transcript = "\n".join(f"{t.role}: {t.content}" for t in history)
    return [
        {"role": "system", "content": CONDENSE_PROMPT},
        {"role": "user", "content": f"Conversation:\n{transcript}\n\nLast question: {question}"},
    ]


class OpenAIChatProvider:
    """Streams `/v1/chat/completions` (SSE) from any OpenAI-compatible server, mapping
    rag_openai's errors to the LLM errors the answer kind knows."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        max_attempts: int = 5,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.model = model
        self.client = OpenAIClient(
            base_url,
            api_key,
            max_attempts=max_attempts,
            retry=retry,
            timeout=timeout,
            failure_event="llm_request_failed",
        )

    async def search_query(self, question: str, history: Sequence[Turn]) -> str:
        """The model's standalone rewrite of a follow-up (the question itself without history,
        or when the model answers nothing), at most MAX_QUERY_CHARS."""
        if not history:
            return question
        parts = [piece async for piece in self._chat(condense_messages(question, history))]
        query = " ".join("".join(parts).split())[:MAX_QUERY_CHARS]
        return query or question

    def stream(
        self, question: str, passages: Sequence[Hit], history: Sequence[Turn] = ()
    ) -> AsyncIterator[str]:
        return self._chat(build_messages(question, passages, history))

    async def _chat(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        try:
            async with self.client.session() as api:
                async for text in api.chat_stream(self.model, messages):
                    yield text
        except StreamBroken as exc:
            raise LLMStreamError(f"the model's stream broke off ({exc.reason})") from exc
        except TransientError as exc:
            raise LLMTransientError(f"the model endpoint is unavailable ({exc.reason})") from exc
        except PermanentError as exc:
            raise LLMPermanentError(f"the model endpoint refused the request (HTTP {exc.status})") from exc


def build_provider(settings: ApiSettings) -> AnswerProvider:
    """The provider LLM_PROVIDER names; ValueError naming the missing variable."""
    if settings.llm_provider == "extractive":
        return ExtractiveProvider()
    if not settings.llm_base_url:
        raise ValueError("LLM_BASE_URL is required when LLM_PROVIDER=openai")
    if not settings.llm_model:
        raise ValueError("LLM_MODEL is required when LLM_PROVIDER=openai")
    return OpenAIChatProvider(settings.llm_base_url, settings.llm_model, settings.llm_api_key)
