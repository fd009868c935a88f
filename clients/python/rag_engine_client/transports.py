"""The two ways to hold the realtime stream open, behind one small interface.

Both deliver the same JSON frames (docs/realtime.md; SSE wraps each in one message). What
differs is how each ends, so both turn every ending (a close frame, a close message, a
refused handshake, a dropped TCP connection) into one `ConnectionEnded(code, reason)` with
the WebSocket's close codes: the reconnect policy then has one table to read.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rag_engine_client.sse import SseComment, SseMessage, SseParser

TransportName = Literal["websocket", "sse"]

# The code of an ending that never reached the server's application (refused upgrade,
# connection refused, dropped TCP): the WebSocket's "abnormal closure".
ABNORMAL = 1006
UNAUTHORIZED = 4401
TOO_SLOW = 4408
TOO_MANY_CONNECTIONS = 4429
SERVER_ERROR = 1011


class ConnectionEnded(Exception):
    """The connection is over; `code` as a WebSocket close code."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


class StreamConnection(Protocol):
    name: TransportName

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next frame, or None for a sign of life that is no frame (an SSE comment).
        Raises ConnectionEnded when the connection ends, TimeoutError after `timeout` s of
        silence."""
        ...

    async def send(self, frame: dict[str, Any]) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def stream_url(base_url: str, path: str, params: dict[str, str], websocket: bool) -> str:
    parts = urlsplit(base_url)
    scheme = parts.scheme
    if websocket:
        scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    query = urlencode(params)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, query, ""))


def _decode_frame(text: str | bytes) -> dict[str, Any] | None:
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


class WebSocketConnection:
    name: TransportName = "websocket"

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(
        cls, base_url: str, token: str, params: dict[str, str], open_timeout: float
    ) -> WebSocketConnection:
        url = stream_url(base_url, "/api/ws", params, websocket=True)
        try:
            ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=open_timeout,
                close_timeout=5,
                # The server's application-level ping and our silence watchdog are the rule
                # (docs/realtime.md, "Dead sockets"); protocol pings would only duplicate it.
                ping_interval=None,
                max_size=None,
            )
        except InvalidStatus as exc:
            raise ConnectionEnded(ABNORMAL, f"upgrade refused: HTTP {exc.response.status_code}") from exc
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise ConnectionEnded(ABNORMAL, f"cannot open: {exc!r}") from exc
        return cls(ws)

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        while True:
            try:
                message = await asyncio.wait_for(self.ws.recv(), timeout)
            except ConnectionClosed as exc:
                raise ConnectionEnded(self.ws.close_code or ABNORMAL, self.ws.close_reason or "") from exc
            frame = _decode_frame(message)
            if frame is not None:
                return frame

    async def send(self, frame: dict[str, Any]) -> None:
        try:
            await self.ws.send(json.dumps(frame))
        except ConnectionClosed as exc:
            raise ConnectionEnded(self.ws.close_code or ABNORMAL, self.ws.close_reason or "") from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)


# What an SSE answer before the stream means, as the WebSocket would have said it.
_SSE_REFUSALS = {401: UNAUTHORIZED, 429: TOO_MANY_CONNECTIONS, 503: SERVER_ERROR}


class SseConnection:
    name: TransportName = "sse"

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.parser = SseParser()

    @classmethod
    async def open(
        cls, http: httpx.AsyncClient, base_url: str, token: str, params: dict[str, str]
    ) -> SseConnection:
        url = stream_url(base_url, "/api/events/stream", params, websocket=False)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if "last_event_id" in params:
            headers["Last-Event-ID"] = params["last_event_id"]
        request = http.build_request("GET", url, headers=headers)
        try:
            response = await http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ConnectionEnded(ABNORMAL, f"cannot open: {exc!r}") from exc
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or not content_type.startswith("text/event-stream"):
            await response.aread()
            await response.aclose()
            code = _SSE_REFUSALS.get(response.status_code, ABNORMAL)
            raise ConnectionEnded(code, f"HTTP {response.status_code}: {response.text[:200]}")
        return cls(response)

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        while True:
            try:
                line = await asyncio.wait_for(anext(self.lines), timeout)
            except StopAsyncIteration as exc:
                raise ConnectionEnded(ABNORMAL, "stream ended without a close message") from exc
            except httpx.HTTPError as exc:
                raise ConnectionEnded(ABNORMAL, f"stream broken: {exc!r}") from exc
            item = self.parser.feed(line)
            if isinstance(item, SseComment):
                return None
            if not isinstance(item, SseMessage):
                continue
            frame = _decode_frame(item.data)
            if frame is None:
                continue
            if frame.get("type") == "close" and "id" not in frame:
                payload = frame.get("payload") or {}
                raise ConnectionEnded(int(payload.get("code", ABNORMAL)), str(payload.get("reason", "")))
            return frame

    async def send(self, frame: dict[str, Any]) -> None:
        raise RuntimeError("SSE carries no client frames")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.response.aclose()
