"""Answer providers: turn a question and retrieved passages into streamed text.

`extractive` needs nothing outside this process: it quotes the sentences of the
best passages that share the most words with the question, each with its `[n]`
citation, and says so plainly when nothing relevant was found. `openai` streams
from any OpenAI-compatible `/v1/chat/completions` with a system prompt that
demands citations; 429/5xx/connection errors before the first token are retried
with backoff; a failure after the first token surfaces as `LLMStreamError` (the
job runtime retries the whole answer, content reset, up to JOB_MAX_ATTEMPTS).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import httpx
import orjson
import structlog

from rag_api.search import Hit
from rag_api.settings import ApiSettings

log = structlog.get_logger("rag_api.answering")

LOGGED_BODY_BYTES = 300
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
    """The model endpoint failed in a way worth retrying later.

    The messages of these errors name the failure (HTTP status, exception class), never
    the endpoint's URL or the body it answered: those are logged (`llm_request_failed`).
    """


class LLMPermanentError(Exception):
    """The request can never succeed as configured (bad model, auth refused)."""


class LLMStreamError(LLMTransientError):
    """The stream broke after text was produced: the answer restarts from scratch."""


class AnswerProvider(Protocol):
    def stream(self, question: str, passages: Sequence[Hit]) -> AsyncIterator[str]: ...


def _terms(text: str) -> set[str]:
    return {w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOP and len(w) > 1}


class ExtractiveProvider:
    """Quote the most relevant sentences of the best passages, with citations."""

    def __init__(self, max_sentences: int = 4) -> None:
        self.max_sentences = max_sentences

    async def stream(self, question: str, passages: Sequence[Hit]) -> AsyncIterator[str]:
        for piece in self.answer(question, passages).split(" "):
            yield piece + " "
            await asyncio.sleep(0)

    def answer(self, question: str, passages: Sequence[Hit]) -> str:
        wanted = _terms(question)
        scored: list[tuple[float, int, int, str]] = []
        for n, hit in enumerate(passages, start=1):
            for position, sentence in enumerate(_SENTENCE.split(hit.text.strip())):
                overlap = len(wanted & _terms(sentence))
                if overlap:
                    # Earlier passages (better ranked) win ties.
                    scored.append((overlap - n * 0.01, n, position, " ".join(sentence.split())))
        if not scored:
            return NOTHING_FOUND
        best = sorted(scored, key=lambda s: -s[0])[: self.max_sentences]
        best.sort(key=lambda s: (s[1], s[2]))  # read in document order
        lines = [f"{sentence} [{n}]" for _, n, _, sentence in best]
        return "From the workspace's documents:\n\n" + "\n".join(lines)


SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages provided. After every claim, cite the "
    "passage it comes from as [n]. If the passages do not contain the answer, say plainly that the "
    "documents do not cover it. Be concise."
)


def build_messages(question: str, passages: Sequence[Hit]) -> list[dict[str, str]]:
    context = "\n\n".join(f"[{n}] ({hit.filename}) {hit.text}" for n, hit in enumerate(passages, start=1))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Passages:\n\n{context or '(none)'}\n\nQuestion: {question}"},
    ]


class OpenAIChatProvider:
    """Streams `/v1/chat/completions` (SSE) from any OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        root = base_url.rstrip("/")
        self.url = root + ("/chat/completions" if root.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retries = retries
        self.backoff = backoff
        self.timeout = httpx.Timeout(timeout, connect=10.0)

    async def stream(self, question: str, passages: Sequence[Hit]) -> AsyncIterator[str]:
        body = {"model": self.model, "stream": True, "messages": build_messages(question, passages)}
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            for attempt in range(self.retries + 1):
                started = False
                try:
                    async with client.stream("POST", self.url, json=body, headers=self.headers) as response:
                        status = response.status_code
                        if status >= 400:
                            await self._log_failure(attempt, status=status, body=await _head(response))
                        if status == 429 or status >= 500:
                            raise LLMTransientError(f"the model endpoint answered HTTP {status}")
                        if status >= 400:
                            raise LLMPermanentError(f"the model endpoint refused the request (HTTP {status})")
                        async for line in response.aiter_lines():
                            text = _sse_text(line)
                            if text is None:
                                break
                            if text:
                                started = True
                                yield text
                        return
                except (LLMTransientError, httpx.TransportError) as exc:
                    if isinstance(exc, httpx.TransportError):
                        await self._log_failure(attempt, error=f"{type(exc).__name__}: {exc}")
                    reason = str(exc) if isinstance(exc, LLMTransientError) else type(exc).__name__
                    if started:
                        raise LLMStreamError(f"the model's stream broke off ({reason})") from None
                    if attempt == self.retries:
                        raise LLMTransientError(f"the model endpoint is unavailable ({reason})") from None
                    await asyncio.sleep(self.backoff * 2**attempt * random.uniform(0.5, 1.5))

    async def _log_failure(self, attempt: int, **details: object) -> None:
        """The details a user must not see (URL, upstream body), for the operator: the
        answer job's id is bound in the log context."""
        log.warning("llm_request_failed", url=self.url, model=self.model, attempt=attempt + 1, **details)


async def _head(response: httpx.Response) -> str:
    """The start of an error body, for the log only."""
    try:
        return (await response.aread())[:LOGGED_BODY_BYTES].decode(errors="replace")
    except httpx.HTTPError as exc:
        return f"(unreadable: {type(exc).__name__})"


def _sse_text(line: str) -> str | None:
    """The text of one SSE line: '' for non-content lines, None at `[DONE]`."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk = orjson.loads(data)
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        return (choices[0].get("delta") or {}).get("content") or ""
    except (orjson.JSONDecodeError, AttributeError):
        return ""


def build_provider(settings: ApiSettings) -> AnswerProvider:
    """The provider LLM_PROVIDER names; ValueError naming the missing variable."""
    if settings.llm_provider == "extractive":
        return ExtractiveProvider()
    if not settings.llm_base_url:
        raise ValueError("LLM_BASE_URL is required when LLM_PROVIDER=openai")
    if not settings.llm_model:
        raise ValueError("LLM_MODEL is required when LLM_PROVIDER=openai")
    return OpenAIChatProvider(settings.llm_base_url, settings.llm_model, settings.llm_api_key)
