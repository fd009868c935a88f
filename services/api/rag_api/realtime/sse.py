"""`GET /api/events/stream`: the user's realtime stream as Server-Sent Events (docs/realtime.md).

For clients behind proxies that break WebSockets. The same `Connection` serves it, so
ordering, dedupe, resume, epochs, redaction, the per-user cap, backpressure (4408) and
token expiry (4401) follow exactly the WebSocket's rules; only the framing differs:

- Every frame is one SSE message: `event:` its type, `id:` the event id (event frames
  only, so that `EventSource` remembers the last one), `data:` the very JSON text the
  WebSocket sends (orjson never emits a raw newline, so it is always one line).
- Resume: the `Last-Event-ID` header (what `EventSource` sends by itself when it
  reconnects) wins over `?last_event_id=`; `?epoch=` as on the WebSocket. Auth:
  `?token=` or `Authorization: Bearer`.
- Errors before the stream starts are ordinary JSON errors: 401 `unauthorized`, 400
  `invalid_parameter` (the WebSocket can only say so in a frame after hello), 429
  `too_many_connections`, 503 `realtime_unavailable`.
- The stream is one-way: no ping/pong/auth frames. The heartbeat is a `: keepalive`
  comment every SSE_KEEPALIVE_SECONDS (proxies cut idle responses; EventSource ignores
  comments). A token is refreshed by reconnecting with the new one and the last id.
- The server ends the stream with a last `event: close` message
  `{"type":"close","payload":{"code","reason"}}`, the WebSocket's close code and reason,
  then ends the response.
- The first message carries `retry:` (EventSource's reconnection delay) drawn at random
  in RETRY_MS, so that the streams of a replica that goes away do not all come back in
  the same millisecond.
"""

from __future__ import annotations

import random

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rag_api.deps import authenticate
from rag_api.errors import ApiError, error_response
from rag_api.limits import WS_CLOSE_TOO_MANY_CONNECTIONS
from rag_api.metrics import SSE_CLOSES, SSE_STREAMS_OPEN, close_code_label
from rag_api.params import PG_BIGINT_MAX, optional_int_param, parse_int, text_param
from rag_api.realtime import frames
from rag_api.realtime.hub import RealtimeHub
from rag_core.tokens import AuthError, TokenClaims
from rag_eventbus import DeliveredEvent

log = structlog.get_logger("rag_api.realtime")

RETRY_MS = (1000, 4000)
KEEPALIVE = b": keepalive\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx (and ingress-nginx) would buffer the stream otherwise
]


class SseTransport:
    """One HTTP response that stays open; frames are written as SSE messages."""

    client_frames = False
    open_gauge = SSE_STREAMS_OPEN
    closes = SSE_CLOSES

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._started = False  # the 200 and its headers are sent
        self._ended = False  # the response is complete
        self._gone = False  # the client disconnected

    async def _write(self, chunk: bytes) -> None:
        if not self._started:
            await self._send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            self._started = True
            chunk = b"retry: %d\n" % random.randint(*RETRY_MS) + chunk
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def send_control(self, frame: bytes) -> None:
        if frame == frames.PING:
            await self._write(KEEPALIVE)
            return
        frame_type = orjson.loads(frame)["type"].encode()  # a small, rare frame of our own
        await self._write(b"event: %s\ndata: %s\n\n" % (frame_type, frame))

    async def send_event(self, event: DeliveredEvent) -> None:
        await self._write(
            b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.type.encode(), event.to_frame())
        )

    async def receive(self) -> str | bytes | None:
        """Wait for the client to leave: an SSE client sends nothing after its request."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._gone = True
                self.closes.labels(code="client").inc()
                return None

    async def close(self, code: int, reason: str) -> None:
        if self._gone or self._ended:
            return
        if not self._started:
            # Nothing was streamed yet: an ordinary error response says it better.
            response = _refusal(code, reason)
            self._started = self._ended = True
            await response(self._scope, self._receive, self._send)
            return
        await self.send_control(frames.close(code, reason))
        await self.finish()

    async def finish(self) -> None:
        """End the response (if the client is still there and it is not ended yet)."""
        if self._gone or self._ended:
            return
        self._ended = True
        if not self._started:
            await self._send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


def _refusal(code: int, reason: str) -> Response:
    """The JSON error for a stream the server ends before its first frame."""
    if code == WS_CLOSE_TOO_MANY_CONNECTIONS:
        return error_response(
            429,
            "too_many_connections",
            "This user holds the maximum number of realtime connections on this server "
            "(WS_MAX_CONNECTIONS_PER_USER, WebSockets and SSE streams together); close one first.",
        )
    return error_response(
        503, "realtime_unavailable", f"Realtime delivery is unavailable ({reason}); retry later."
    )


class EventStreamResponse(Response):
    """Runs the user's connection for as long as the response is open."""

    def __init__(self, hub: RealtimeHub, claims: TokenClaims, resume_after: int | None, epoch: str | None):
        self._hub = hub
        self._claims = claims
        self._resume_after = resume_after
        self._epoch = epoch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = SseTransport(scope, receive, send)
        try:
            await self._hub.connection(transport, self._claims).serve(self._resume_after, self._epoch)
        finally:
            await transport.finish()


def _resume_after(request: Request) -> int | None:
    """The id to resume after: the Last-Event-ID header (EventSource's reconnect) wins over
    `?last_event_id=`; None (live only) when neither is given."""
    header = request.headers.get("last-event-id")
    if header:
        return parse_int(header, "Last-Event-ID", 0, PG_BIGINT_MAX)
    return optional_int_param(request, "last_event_id", 0)


async def event_stream_endpoint(request: Request) -> Response:
    try:
        claims = authenticate(request, request.query_params.get("token"))
    except AuthError as exc:
        log.info("sse_unauthorized", reason=str(exc))
        SSE_CLOSES.labels(code=close_code_label(frames.CLOSE_UNAUTHORIZED)).inc()
        return error_response(401, "unauthorized", f"Authentication failed: {exc}.")
    hub: RealtimeHub | None = getattr(request.app.state, "hub", None)
    if hub is None:
        return error_response(503, "realtime_unavailable", "Realtime delivery is not running on this server.")
    try:
        resume_after = _resume_after(request)
        epoch = text_param(request, "epoch")
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    structlog.contextvars.bind_contextvars(user_id=str(claims.user_id))
    if request.method == "HEAD":
        # What a GET would answer, without a stream: a HEAD has no body to hold it open.
        return Response(status_code=200, headers={k.decode(): v.decode() for k, v in HEADERS})
    return EventStreamResponse(hub, claims, resume_after, epoch)
