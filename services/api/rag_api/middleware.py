"""Request context: an id per request (X-Request-ID), log context, metrics, last-resort 500,
and the rule that an answer is sent only after the request body was read.

A plain ASGI middleware (not BaseHTTPMiddleware) so that streamed request bodies and
WebSockets pass through untouched.

Why drain: an HTTP/1.1 client writes its whole body before reading the answer. A handler
that refuses early (401, 404, a malformed upload) would otherwise answer with the body
half-read; hypercorn then closes the connection, and the client sees a reset instead of
the status (or, on keep-alive, its next request fails). So before the response starts,
the unread rest of the body is read and dropped, up to `drain_limit` bytes; past that the
answer carries `Connection: close`.
"""

from __future__ import annotations

import re
import time
import uuid

import orjson
import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_api.metrics import REQUEST_SECONDS, REQUESTS

log = structlog.get_logger("rag_api.http")

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}
_INTERNAL_ERROR = orjson.dumps(
    {"error": {"code": "internal_error", "message": "An unexpected error occurred; it has been logged."}}
)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class _BodyTracker:
    """Wraps `receive` to know whether the request body was read to its end."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        headers = Headers(scope=scope)
        length = headers.get("content-length", "0").strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.pending = chunked or (length != "0" and length != "")
        self._receive = receive

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or (
            message["type"] == "http.request" and not message.get("more_body", False)
        ):
            self.pending = False
        return message

    async def drain(self, limit: int) -> bool:
        """Read the rest of the body; False if it was longer than `limit` (left unread)."""
        total = 0
        while self.pending:
            message = await self.receive()
            total += len(message.get("body", b""))
            if total > limit:
                return False
        return True


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, drain_limit: int = 64 * 1024 * 1024) -> None:
        self.app = app
        self.drain_limit = drain_limit

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
        body = _BodyTracker(scope, receive)

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                if body.pending and not await body.drain(self.drain_limit):
                    headers["connection"] = "close"
            await send(message)

        began = time.perf_counter()
        try:
            await self.app(scope, body.receive, send_with_id)
        except ClientDisconnect:
            status = 499  # the client went away; nobody to answer
            log.info("client_disconnected")
        except Exception:
            log.exception("unhandled_error")
            if started:
                raise
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send_with_id({"type": "http.response.body", "body": _INTERNAL_ERROR})
        finally:
            elapsed = time.perf_counter() - began
            method, route = scope["method"], _route_template(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            REQUEST_SECONDS.labels(method, route).observe(elapsed)
            level = log.debug if scope["path"] in _QUIET_PATHS else log.info
            level(
                "request",
                method=method,
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()
