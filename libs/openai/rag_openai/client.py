"""The OpenAI-compatible HTTP client: ``POST /v1/embeddings`` and streamed
``POST /v1/chat/completions``, for OpenAI, vLLM, TEI, Ollama, LiteLLM and the like.

    client = OpenAIClient(base_url, api_key, max_attempts=6, failure_event="embedding_request_failed")
    async with client.session() as api:            # one connection pool per unit of work
        rows = await api.embeddings(model, texts)  # list of vectors, in input order
        async for text in api.chat_stream(model, messages): ...

Retries live here and only here, because a rate limit is the normal weather of a hosted
API: three 429s in a row must cost a few seconds, not three job attempts. 429, 5xx,
connection errors and timeouts are retried with the shared rag_retry policy, the
endpoint's ``Retry-After`` taking precedence (capped); a stream is retried only until it
has produced text. Other 4xx are ``PermanentError`` at once. When the attempts are spent
the caller gets ``TransientError`` and decides (the job runtime retries the job later).

What an error says is safe to show (rag_openai.errors); the details (URL, status, the
first bytes of the body, the exception's text) are logged under ``failure_event``, in
the caller's structlog context (the job id), never the API key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import orjson
import structlog

from rag_openai.errors import MalformedAnswer, PermanentError, StreamBroken, TransientError
from rag_openai.sse import sse_text
from rag_retry import RetryPolicy, parse_retry_after

log = structlog.get_logger("rag_openai")

T = TypeVar("T")
Reader = Callable[[httpx.Response], AsyncIterator[T]]

DEFAULT_RETRY = RetryPolicy(base_seconds=0.5, max_seconds=20.0)
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
LOGGED_BODY_CHARS = 300


def endpoint_url(base_url: str, path: str) -> str:
    """``{base}/v1/{path}``, whether the configured base is the server, its /v1, or the endpoint itself."""
    base = base_url.rstrip("/")
    if base.endswith("/" + path):
        return base
    if base.endswith("/v1"):
        return f"{base}/{path}"
    return f"{base}/v1/{path}"


class _Unreadable(Exception):
    """A reader could not make sense of a 2xx body (becomes MalformedAnswer, logged)."""


class OpenAIClient:
    """One endpoint's settings. Holds no connection: ``session()`` opens one per unit of
    work, so nothing stays bound to an event loop between calls."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        max_attempts: int = 5,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        failure_event: str = "openai_request_failed",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts counts the first try: at least 1")
        self.base_url = base_url
        self.max_attempts = max_attempts
        self.retry = retry
        self.timeout = timeout
        self.failure_event = failure_event
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[OpenAISession]:
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as http:
            yield OpenAISession(self, http)


class OpenAISession:
    """Requests over one pool of connections (reused across the batches of a document)."""

    def __init__(self, client: OpenAIClient, http: httpx.AsyncClient) -> None:
        self._client = client
        self._http = http

    async def embeddings(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """One ``/v1/embeddings`` request: the vectors of `inputs`, in their order (by ``index``).

        The caller checks their number and length: what fits is its business."""
        body = {"model": model, "input": list(inputs)}
        async with contextlib.aclosing(self._post("embeddings", body, _embedding_rows)) as answers:
            return await anext(answers)

    async def chat_stream(self, model: str, messages: Sequence[Mapping[str, str]]) -> AsyncIterator[str]:
        """The text deltas of a streamed chat completion, up to ``[DONE]`` or the end of the stream."""
        body = {"model": model, "stream": True, "messages": list(messages)}
        async with contextlib.aclosing(self._post("chat/completions", body, _chat_deltas)) as deltas:
            async for text in deltas:
                yield text

    async def _post(self, path: str, body: dict[str, Any], read: Reader[T]) -> AsyncGenerator[T, None]:
        """POST `body` until an attempt gets a 2xx, then yield what `read` makes of it.

        The one retry loop: see the module docstring for what is retried. A connection that
        breaks after `read` produced something is StreamBroken, never retried here.
        """
        client = self._client
        url = endpoint_url(client.base_url, path)
        details = {"url": url, "model": body.get("model"), "max_attempts": client.max_attempts}
        reason = "no attempt made"
        for attempt in range(1, client.max_attempts + 1):
            retry_after: float | None = None
            produced = False
            try:
                async with self._http.stream("POST", url, json=body) as response:
                    status = response.status_code
                    if 200 <= status < 300:
                        try:
                            async for item in read(response):
                                produced = True
                                yield item
                        except _Unreadable as exc:
                            text = response.text[:LOGGED_BODY_CHARS]
                            self._log(details, attempt, status=status, error=str(exc), body=text)
                            raise MalformedAnswer("an answer that could not be read", attempt) from None
                        return
                    self._log(details, attempt, status=status, body=await _head(response))
                    if status != 429 and status < 500:
                        raise PermanentError(f"HTTP {status}", status)
                    reason = f"HTTP {status}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
            except httpx.RequestError as exc:  # connect/read errors, timeouts, broken streams
                reason = type(exc).__name__
                self._log(details, attempt, error=f"{reason}: {exc}")
                if produced:
                    raise StreamBroken(reason, attempt) from None
            if attempt < client.max_attempts:
                await asyncio.sleep(client.retry.delay(attempt, retry_after))
        raise TransientError(reason, client.max_attempts)

    def _log(self, details: Mapping[str, object], attempt: int, **failure: object) -> None:
        """The details a user must not see (URL, upstream body), for the operator."""
        log.warning(self._client.failure_event, attempt=attempt, **details, **failure)


async def _embedding_rows(response: httpx.Response) -> AsyncIterator[list[list[float]]]:
    raw = await response.aread()
    try:
        answer: Any = orjson.loads(raw)
        items = sorted(answer["data"], key=lambda d: int(d.get("index", 0)))
        rows = [item["embedding"] for item in items]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise _Unreadable(repr(exc)) from exc
    if not all(isinstance(row, list) for row in rows):
        raise _Unreadable("an embedding that is not a list of numbers")
    yield rows


async def _chat_deltas(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        text = sse_text(line)
        if text is None:
            return
        if text:
            yield text


async def _head(response: httpx.Response) -> str:
    """The start of an error body, for the log only."""
    try:
        return (await response.aread())[:LOGGED_BODY_CHARS].decode(errors="replace")
    except httpx.HTTPError as exc:
        return f"(unreadable: {type(exc).__name__})"
