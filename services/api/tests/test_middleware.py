"""The request-context middleware in-process: last-resort 500 JSON, request ids, body draining."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rag_api.middleware import RequestContextMiddleware

pytestmark = pytest.mark.anyio


async def boom(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def refuse_early(request: Request) -> Response:
    return JSONResponse({"error": {"code": "nope", "message": "No."}}, status_code=401)


def app(received: list[Any]) -> Any:
    """The middleware as the real app has it (inside Starlette's ServerErrorMiddleware),
    behind a spy that records every message the server hands to the app."""
    inner = Starlette(
        routes=[Route("/boom", boom), Route("/refuse", refuse_early, methods=["POST"])],
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
