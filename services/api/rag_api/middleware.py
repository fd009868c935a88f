"""Request context: an id per request (X-Request-ID), log context, metrics, last-resort 500,
what happens to a request body the handler did not read, and the body idle timeout.

A plain ASGI middleware (not BaseHTTPMiddleware) so that streamed request bodies and
WebSockets pass through untouched.

Unread bodies, "answer and close": an HTTP/1.1 client writes its whole body before it
reads the answer. A handler that refuses early (401, 404, a malformed upload) answers
with the body half-read. A small rest (up to `drain_bytes`, arriving within
`drain_seconds`) is read and dropped before the answer, so that the connection stays
usable for the next request. Anything bigger is not read for the sake of a refusal
(an unauthenticated client must not make the server read 100 MB): the answer carries
`Connection: close`, and the server then keeps reading and dropping what the client
still sends for at most `linger_seconds` / `linger_bytes` before it closes (a "lingering
close"). Closing a socket with unread data sends a TCP reset, which can destroy the
answer in the client's receive buffer before it was read; lingering lets a client that
is still writing see the status first.

Body idle timeout (REQUEST_READ_TIMEOUT_SECONDS): when the handler waits for the next
piece of the body longer than `body_idle_seconds`, the read fails with `BodyReadTimeout`
(the handler's cleanup runs: an upload deletes what it stored), the answer is 408
`request_timeout` with `Connection: close`, and the connection ends. hypercorn's own
`read_timeout` is not used for this: it applies to every read of the socket, WebSocket
frames included, and would cut idle WebSockets without a close frame.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import orjson
import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_api.metrics import REQUEST_SECONDS, REQUESTS, method_label, status_label
from rag_observability.tracing import name_server_span

log = structlog.get_logger("rag_api.http")

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}

DRAIN_BYTES = 64 * 1024  # unread body read before a refusal, for keep-alive
DRAIN_SECONDS = 1.0
LINGER_SECONDS = 2.0  # reading after an answer with Connection: close
LINGER_BYTES = 16 * 1024 * 1024


class BodyReadTimeout(Exception):
    """The client sent no part of the request body for `body_idle_seconds`."""


def internal_error_body(request_id: str) -> bytes:
    message = f"An unexpected error occurred; it has been logged (ref {request_id})."
    return orjson.dumps({"error": {"code": "internal_error", "message": message}})


def request_timeout_body(seconds: float) -> bytes:
    message = (
        f"The request body stalled for {seconds:g} seconds; nothing was stored and the connection is closed."
    )
    return orjson.dumps({"error": {"code": "request_timeout", "message": message}})


def route_label(scope: Scope) -> str:
    """The matched route's template (never a path with ids in it), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    return f"{path}/{{path:path}}" if isinstance(route, Mount) else path


class _BodyTracker:
    """Wraps `receive`: knows whether the body was read to its end, times out idle reads."""

    def __init__(self, scope: Scope, receive: Receive, idle_seconds: float | None) -> None:
        headers = Headers(scope=scope)
        length = headers.get("content-length", "0").strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.pending = chunked or (length != "0" and length != "")
        self.timed_out = False
        self._receive = receive
        self._idle_seconds = idle_seconds

    def _note(self, message: Message) -> Message:
        if message["type"] == "http.disconnect" or (
            message["type"] == "http.request" and not message.get("more_body", False)
        ):
            self.pending = False
        return message

    async def receive(self) -> Message:
        if not self.pending or self._idle_seconds is None:
            return self._note(await self._receive())
        try:
            return self._note(await asyncio.wait_for(self._receive(), self._idle_seconds))
        except TimeoutError:
            self.timed_out = True
            raise BodyReadTimeout() from None

    async def discard(self, max_bytes: int, seconds: float) -> bool:
        """Read and drop the rest of the body for at most `seconds` and `max_bytes`;
        True if it ended (or the client left) within those bounds."""
        if self.timed_out:
            return False
        deadline = time.monotonic() + seconds
        total = 0
        while self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or total > max_bytes:
                return False
            try:
                message = self._note(await asyncio.wait_for(self._receive(), remaining))
            except TimeoutError:
                return False
            total += len(message.get("body", b""))
        return True


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        body_idle_seconds: float | None = None,
        drain_bytes: int = DRAIN_BYTES,
        drain_seconds: float = DRAIN_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
        linger_bytes: int = LINGER_BYTES,
    ) -> None:
        self.app = app
        self.body_idle_seconds = body_idle_seconds
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds
        self.linger_seconds = linger_seconds
        self.linger_bytes = linger_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                structlog.contextvars.clear_contextvars()
            return
        await self._http(scope, receive, send, request_id)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        status = 500
        started = False
        closing = False  # the answer carries Connection: close; linger before the end
        streaming = False  # an SSE stream: its duration is a session, not a latency
        body = _BodyTracker(scope, receive, self.body_idle_seconds)

        async def send_with_id(message: Message) -> None:
            nonlocal status, started, closing, streaming
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                # The server span (rag_api.tracing), when tracing is on, by its route template:
                # now, because the tracing middleware ends it with the response's last part.
                name_server_span(method_label(scope["method"]), route_label(scope))
                streaming = (
                    Headers(raw=message.get("headers", []))
                    .get("content-type", "")
                    .startswith("text/event-stream")
                )
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                if body.pending and not await body.discard(self.drain_bytes, self.drain_seconds):
                    headers["connection"] = "close"
                    closing = not body.timed_out and "content-length" in headers
            elif message["type"] == "http.response.body" and closing and not message.get("more_body"):
                # The whole answer first (its Content-Length tells the client it is
                # complete), then the lingering read, then the end that closes the socket.
                await send({**message, "more_body": True})
                await body.discard(self.linger_bytes, self.linger_seconds)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        async def answer(status_code: int, payload: bytes) -> None:
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": status_code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": payload})

        began = time.perf_counter()
        try:
            await self.app(scope, body.receive, send_with_id)
        except ClientDisconnect:
            status = 499  # the client went away; nobody to answer
            log.info("client_disconnected")
        except BodyReadTimeout:
            log.info("request_body_timeout", idle_seconds=self.body_idle_seconds)
            if started:
                raise
            assert self.body_idle_seconds is not None
            await answer(408, request_timeout_body(self.body_idle_seconds))
        except Exception:
            log.exception("unhandled_error")
            if started:
                raise
            await answer(500, internal_error_body(request_id))
        finally:
            elapsed = time.perf_counter() - began
            method, route = method_label(scope["method"]), route_label(scope)
            REQUESTS.labels(method, route, status_label(status)).inc()
            if not streaming:
                REQUEST_SECONDS.labels(method, route).observe(elapsed)
            level = log.debug if scope["path"] in _QUIET_PATHS else log.info
            level(
                "request",
                method=scope["method"][:32],
                path=scope["path"][:512],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()
