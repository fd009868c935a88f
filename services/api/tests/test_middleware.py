"""The request-context middleware in-process: last-resort 500 JSON, request ids, body draining."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rag_api.metrics import close_code_label, method_label, status_label
from rag_api.middleware import RequestContextMiddleware

pytestmark = pytest.mark.anyio


async def boom(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def refuse_early(request: Request) -> Response:
    return JSONResponse({"error": {"code": "nope", "message": "No."}}, status_code=401)


async def stream(request: Request) -> Response:
    return Response(b"event: hello\ndata: {}\n\n", media_type="text/event-stream")


async def plain(request: Request) -> Response:
    return JSONResponse({"ok": True})


def app(received: list[Any]) -> Any:
    """The middleware as the real app has it (inside Starlette's ServerErrorMiddleware),
    behind a spy that records every message the server hands to the app."""
    inner = Starlette(
        routes=[
            Route("/boom", boom),
            Route("/refuse", refuse_early, methods=["POST"]),
            Route("/stream", stream),
            Route("/plain", plain),
        ],
        middleware=[Middleware(RequestContextMiddleware, drain_bytes=1000, linger_seconds=0.2)],
    )

    async def recording_app(scope: Any, receive: Any, send: Any) -> None:
        async def spy() -> Any:
            message = await receive()
            received.append(message)
            return message

        await inner(scope, spy, send)

    return recording_app


async def test_unhandled_error_is_json_500_without_traceback() -> None:
    transport = httpx.ASGITransport(app=app([]), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "r-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "r-1"
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret internals" not in response.text and "Traceback" not in response.text


async def test_unread_body_is_drained_before_the_answer() -> None:
    received: list[Any] = []
    transport = httpx.ASGITransport(app=app(received))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/refuse", content=b"x" * 500)
    assert response.status_code == 401 and "connection" not in response.headers
    assert received and received[-1]["type"] == "http.request" and not received[-1].get("more_body")


async def test_body_over_the_drain_limit_closes_the_connection() -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"y" * 500

    transport = httpx.ASGITransport(app=app([]))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/refuse", content=chunks())
    assert response.status_code == 401
    assert response.headers["connection"] == "close"


async def test_the_500_message_names_the_request_id() -> None:
    transport = httpx.ASGITransport(app=app([]), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.json()["error"]["message"].endswith("(ref req-42).")


async def test_a_body_that_stalls_is_answered_408_with_connection_close() -> None:
    """The handler waits for a body that never comes: 408 request_timeout, connection closed."""
    stall = asyncio.Event()

    async def stalled_body() -> Any:
        yield b"first part"
        await stall.wait()  # never set: the client stops sending
        yield b"never"

    inner = Starlette(
        routes=[Route("/read", read_all, methods=["POST"])],
        middleware=[Middleware(RequestContextMiddleware, body_idle_seconds=0.3)],
    )
    transport = httpx.ASGITransport(app=inner)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        started = time.monotonic()
        response = await client.post("/read", content=stalled_body())
    assert response.status_code == 408 and response.headers["connection"] == "close"
    assert response.json()["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < 5


async def read_all(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"size": len(body)})


async def test_a_slow_but_steady_body_is_not_cut() -> None:
    """The timeout is per wait, not for the whole body: each piece resets it."""

    async def slow_body() -> Any:
        for _ in range(6):
            await asyncio.sleep(0.1)
            yield b"x" * 10

    inner = Starlette(
        routes=[Route("/read", read_all, methods=["POST"])],
        middleware=[Middleware(RequestContextMiddleware, body_idle_seconds=0.3)],
    )
    transport = httpx.ASGITransport(app=inner)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/read", content=slow_body())
    assert response.status_code == 200 and response.json() == {"size": 60}


def test_metrics_labels_come_from_fixed_sets() -> None:
    assert [method_label(m) for m in ("GET", "DELETE", "BREW", "get", "X" * 1000)] == [
        "GET",
        "DELETE",
        "OTHER",
        "OTHER",
        "OTHER",
    ]
    assert [status_label(s) for s in (200, 422, 418, 599, 1000)] == ["200", "422", "4xx", "5xx", "other"]
    assert [close_code_label(c) for c in (1000, 4429, 3999, 65535, None)] == [
        "1000",
        "4429",
        "other",
        "other",
        "other",
    ]


def request_seconds_count(route: str) -> float:
    return (
        REGISTRY.get_sample_value("rag_api_request_seconds_count", {"method": "GET", "route": route}) or 0.0
    )


async def test_an_sse_stream_is_counted_but_its_duration_is_no_request_latency() -> None:
    """A stream open for hours would swamp the latency histogram every SLO alert reads."""
    streams, plains = request_seconds_count("/stream"), request_seconds_count("/plain")
    transport = httpx.ASGITransport(app=app([]))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/stream")).status_code == 200
        assert (await client.get("/plain")).status_code == 200
    assert request_seconds_count("/stream") == streams
    assert request_seconds_count("/plain") == plains + 1
    assert REGISTRY.get_sample_value(
        "rag_api_requests_total", {"method": "GET", "route": "/stream", "status": "200"}
    )
