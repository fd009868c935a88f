"""An SSE test client for `GET /api/events/stream`: httpx (plain HTTP/1.1) and the parsing
rules of the HTML standard's EventSource, so a test sees the stream as a browser would.

Parsing (html.spec.whatwg.org, "Interpreting an event stream"): lines end with LF, CRLF or
CR (httpx's `aiter_lines` splits on all three); a line starting with `:` is a comment; a
blank line dispatches the message; `field: value` with one optional space after the colon;
`data` lines are joined with LF; `id` sets the last event id (kept across messages, as
EventSource keeps it for its reconnect), `retry` an integer delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class SseMessage:
    event: str = "message"
    data: str = ""
    id: str | None = None  # the `id:` of this message itself (None when it had none)
    retry: int | None = None

    def frame(self) -> dict[str, Any]:
        """The JSON frame in `data`."""
        parsed: dict[str, Any] = orjson.loads(self.data)
        return parsed


@dataclass
class SseStream:
    """One open response; `messages()` yields dispatched messages, comments are counted."""

    response: httpx.Response
    last_event_id: str = ""
    comments: list[str] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    async def message(self, timeout: float = 10.0) -> SseMessage:
        """The next dispatched message; EOFError when the response ended first."""
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        message, has_fields = SseMessage(), False
        data: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = await asyncio.wait_for(anext(self._lines), max(0.01, deadline - time.monotonic()))
            except StopAsyncIteration:
                raise EOFError("the stream ended") from None
            if line == "":
                if has_fields and data:
                    message.data = "\n".join(data)
                    return message
                message, data, has_fields = SseMessage(), [], False  # a comment-only block
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            has_fields = True
            if name == "event":
                message.event = value
            elif name == "data":
                data.append(value)
            elif name == "id" and "\x00" not in value:
                message.id = self.last_event_id = value
            elif name == "retry" and value.isdigit():
                message.retry = int(value)

    async def frame(self, timeout: float = 10.0) -> dict[str, Any]:
        return (await self.message(timeout)).frame()

    async def events(self, n: int, timeout: float = 20.0) -> list[SseMessage]:
        """The next `n` event messages (with an `id:`); fails on anything else."""
        out: list[SseMessage] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            message = await self.message(max(0.01, deadline - time.monotonic()))
            assert message.id is not None, f"expected an event, got {message}"
            out.append(message)
        return out


@contextlib.asynccontextmanager
async def open_stream(
    url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> AsyncIterator[SseStream]:
    """GET `url` and hold the response open (any status: the test checks it)."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(timeout, read=None)) as client,
        client.stream("GET", url, headers=headers or {}) as response,
    ):
        yield SseStream(response)
