"""What a realtime `Connection` needs from the socket it serves, and the WebSocket's version.

A connection's rules (order, dedupe, resume, epochs, backlog, live auth) are the same on
every transport; only the framing differs. The WebSocket (`/api/ws`) is two-way: the
client sends frames (ping, pong, auth) and its silence is a sign of a dead socket. The SSE
stream (`/api/events/stream`, sse.py) is one-way: no client frames, a comment for the
heartbeat, and its "close code" travels as a last `close` message before the response ends.

Exactly one task (the connection's writer, or `serve` before the writer starts) sends on
a transport at a time; `close` is called once, after the writer stopped.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter, Gauge
from starlette.websockets import WebSocket

from rag_api.metrics import WEBSOCKET_CLOSES, WEBSOCKETS_OPEN, close_code_label
from rag_eventbus import DeliveredEvent


class Transport(Protocol):
    """One client's socket, as the connection sees it."""

    # True when the client can send frames (ping/pong/auth): the dead-socket rule (silence
    # for 2 heartbeats) and in-band token refresh apply only then.
    client_frames: bool
    open_gauge: Gauge  # connections of this transport open on this process
    closes: Counter  # closes of this transport by code (label `code`)

    async def send_control(self, frame: bytes) -> None:
        """A control frame of rag_api.realtime.frames (hello, resync_required, ping, ...)."""

    async def send_event(self, event: DeliveredEvent) -> None:
        """An event frame, already redacted for this user."""

    async def receive(self) -> str | bytes | None:
        """The next client frame; None once the client is gone."""

    async def close(self, code: int, reason: str) -> None:
        """End the connection the server's way (close code and reason)."""


class WebSocketTransport:
    """`/api/ws`: every frame is one text message; the close is the WebSocket's own."""

    client_frames = True
    open_gauge = WEBSOCKETS_OPEN
    closes = WEBSOCKET_CLOSES

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def send_control(self, frame: bytes) -> None:
        await self.websocket.send_text(frame.decode())

    async def send_event(self, event: DeliveredEvent) -> None:
        await self.websocket.send_text(event.to_text())

    async def receive(self) -> str | bytes | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.closes.labels(code=close_code_label(message.get("code", 1005))).inc()
            return None
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        return data

    async def close(self, code: int, reason: str) -> None:
        await self.websocket.close(code, reason)
