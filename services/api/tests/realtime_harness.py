"""An in-process realtime server for the hub's tests: the hub in a Starlette app on hypercorn.

A Starlette app of our own wires the hub exactly as the api does; the tests talk to it over
TCP with a real WebSocket client (`websockets`) and httpx. End-to-end tests with real
`rag-api` processes are in test_realtime_e2e.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from hypercorn.asyncio import serve
from hypercorn.config import Config
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect

from rag_api.realtime import RealtimeHub, event_stream_endpoint, events_endpoint, websocket_endpoint
from rag_api.settings import ApiSettings
from rag_core.events import DocumentStatusUpdated, Event
from rag_core.tokens import mint_token
from rag_devstack.postgres import free_port
from rag_eventbus import publish
from rag_testing.wsclient import FrameClient

SECRET = "realtime-test-secret-0123456789abcdef"


# -- harness -------------------------------------------------------------------------


@dataclass
class Served:
    hub: RealtimeHub
    ws_url: str
    http_url: str
    dsn: str


@asynccontextmanager
async def served_hub(
    database_url: str, *, queue_max: int = 1000, max_per_user: int = 20, **hub_kwargs: Any
) -> AsyncIterator[Served]:
    """The hub in a Starlette app served by hypercorn on a free port of this process."""
    settings = ApiSettings(
        database_url=database_url,
        s3_bucket="unused",
        jwt_secret=SECRET,
        ws_send_queue_max=queue_max,
        ws_max_connections_per_user=max_per_user,
    )
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)
    await pool.open(wait=True)
    hub = RealtimeHub(pool=pool, listen_dsn=settings.listen_dsn, settings=settings, **hub_kwargs)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    app = Starlette(
        routes=[
            WebSocketRoute("/api/ws", websocket_endpoint),
            Route("/api/events", events_endpoint),
            Route("/api/events/stream", event_stream_endpoint),
        ],
        lifespan=lifespan,
    )
    app.state.hub, app.state.settings, app.state.pool = hub, settings, pool
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.graceful_timeout = 1.0
    shutdown = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait))  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 15
        while True:  # the lifespan (hub.start) runs before hypercorn binds its socket
            assert not server.done(), server.exception()
            assert time.monotonic() < deadline, "the server did not start"
            if hub.ready:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
            await asyncio.sleep(0.02)
        yield Served(hub, f"ws://127.0.0.1:{port}/api/ws", f"http://127.0.0.1:{port}", database_url)
    finally:
        shutdown.set()
        await asyncio.wait_for(server, 15)
        await pool.close()


@asynccontextmanager
async def ws_client(url: str, **kwargs: Any) -> AsyncIterator[FrameClient]:
    async with connect(url, open_timeout=10, close_timeout=2, **kwargs) as ws:
        yield FrameClient(ws)


def ws_url(base: str, user: UUID, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"token": mint_token(user, SECRET), **params}.items())
    return f"{base}?{query}"


def status_event(workspace: UUID, error: str = "") -> Event:
    return Event.of(
        DocumentStatusUpdated(workspace_id=workspace, document_id=uuid.uuid4(), status="error", error=error)
    )


async def publish_events(dsn: str, workspace: UUID, n: int, *, per_tx: int = 1, size: int = 0) -> None:
    """Publish `n` events, `per_tx` per transaction (a large `size` travels by reference)."""
    async with await AsyncConnection.connect(dsn) as conn:
        for start in range(0, n, per_tx):
            async with conn.transaction():
                await publish(
                    conn, [status_event(workspace, "e" * size) for _ in range(min(per_tx, n - start))]
                )
