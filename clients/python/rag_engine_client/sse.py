"""An incremental text/event-stream parser (the WHATWG "event stream interpretation").

Written here rather than taken from httpx-sse because the realtime watchdog needs what that
library's public API hides: comment lines (`: keepalive`) are the server's sign of life on
SSE, and httpx-sse drops them inside its decoder. The rules are few and the tests in
tests/test_sse.py pin them down; the package stays at two dependencies (httpx, websockets).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SseMessage:
    """One dispatched message: `event` defaults to "message"; `id` is this message's own."""

    event: str
    data: str
    id: str | None = None


@dataclass(frozen=True)
class SseComment:
    """A line starting with ':'; the server's keepalive."""

    text: str


class SseParser:
    """Feed it the stream's lines (without their line terminators), one at a time."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._first_line = True
        self.retry_ms: int | None = None

    def feed(self, line: str) -> SseMessage | SseComment | None:
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return SseComment(line[1:].removeprefix(" "))
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        # Any other field is ignored, as the standard says.
        return None

    def _dispatch(self) -> SseMessage | None:
        event, data, event_id = self._event, self._data, self._id
        self._event, self._data, self._id = "", [], None
        if not data:
            return None
        return SseMessage(event or "message", "\n".join(data), event_id)
