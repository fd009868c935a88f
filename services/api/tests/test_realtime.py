"""Realtime hub against the real Postgres, served by hypercorn in this process.

A Starlette app of our own wires the hub exactly as the api does; a real WebSocket
client (`websockets`) and httpx talk to it over TCP. End-to-end tests with real
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
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import jwt
import psycopg
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect

from rag_api.locks import PRUNE_LOCK_KEY
from rag_api.realtime import RealtimeHub, events_endpoint, websocket_endpoint
from rag_api.realtime.connection import Connection
from rag_api.realtime.retention import prune_once
from rag_api.settings import ApiSettings
from rag_core.events import DocumentStatusUpdated, Event
from rag_core.tokens import mint_token
from rag_devstack.postgres import free_port
from rag_eventbus import DeliveredEvent, EventLog, publish
from rag_testing.seed import make_workspace
from rag_testing.wsclient import FrameClient

pytestmark = pytest.mark.anyio

SECRET = "realtime-test-secret-0123456789abcdef"


# -- harness -------------------------------------------------------------------------


@dataclass
class Served:
    hub: RealtimeHub
    ws_url: str
    http_url: str
    dsn: str


@asynccontextmanager
async def served_hub(database_url: str, *, queue_max: int = 1000, **hub_kwargs: Any) -> AsyncIterator[Served]:
    """The hub in a Starlette app served by hypercorn on a free port of this process."""
    settings = ApiSettings(
        database_url=database_url, s3_bucket="unused", jwt_secret=SECRET, ws_send_queue_max=queue_max
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
        routes=[WebSocketRoute("/api/ws", websocket_endpoint), Route("/api/events", events_endpoint)],
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


# -- protocol ------------------------------------------------------------------------


async def test_hello_ping_pong_malformed_frames_and_live_events(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    await publish_events(database_url, workspace, 3)
    async with served_hub(database_url) as srv, ws_client(ws_url(srv.ws_url, user)) as client:
        hello = await client.frame()
        assert hello == {"type": "hello", "payload": {"user_id": str(user), "last_event_id": 3}}
        await client.send({"type": "ping"})
        assert await client.frame() == {"type": "pong"}
        for bad, code in [
            ("not json", "invalid_json"),
            ("[1, 2]", "invalid_frame"),
            ('{"type": 7}', "invalid_frame"),
            ('{"type": "subscribe"}', "unknown_type"),
            (b"\xff\x00", "invalid_json"),
        ]:
            await client.send(bad)
            frame = await client.frame()
            assert frame["type"] == "error" and frame["payload"]["code"] == code, (bad, frame)
            assert frame["payload"]["message"]
        await client.send({"type": "pong"})  # an answer to a server ping: accepted silently
        await client.send({"type": "ping"})
        assert await client.frame() == {"type": "pong"}, "the connection stayed open and in order"

        await publish_events(database_url, workspace, 2, per_tx=2)
        events = await client.events(2)
        assert [e["id"] for e in events] == [4, 5]  # live only: nothing at or below hello's id
        assert set(events[0]) == {"id", "type", "payload", "created_at"}
        assert events[0]["type"] == "document.status_updated"
        assert events[0]["payload"]["workspace_id"] == str(workspace)
        assert "T" in events[0]["created_at"] and events[0]["created_at"].endswith("+00:00")
        await client.silent(0.3)


async def test_bad_tokens_are_closed_with_4401_and_no_frame(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    now = int(time.time())
    claims = {"sub": str(user), "iat": now, "exp": now + 600}
    bad = {
        "expired": mint_token(user, SECRET, ttl_seconds=-60),
        "wrong_signature": mint_token(user, "another-secret-0123456789abcdef0123"),
        "alg_none": jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "garbage": "not.a.jwt",
        "not_a_uuid_subject": jwt.encode({**claims, "sub": "alice"}, SECRET, algorithm="HS256"),
    }
    async with served_hub(database_url) as srv:
        urls = [f"{srv.ws_url}?token={token}" for token in bad.values()]
        urls += [srv.ws_url, f"{srv.ws_url}?token="]
        for url in urls:
            async with ws_client(url) as client:
                # An event published meanwhile must not leak to the refused socket.
                await publish_events(database_url, workspace, 1)
                code, _, frames = await client.until_closed(10)
                assert (code, frames) == (4401, []), url
        headers = {"Authorization": f"Bearer {bad['wrong_signature']}"}
        async with ws_client(srv.ws_url, additional_headers=headers) as client:
            assert (await client.until_closed(10))[::2] == (4401, [])
        headers = {"Authorization": f"Bearer {mint_token(user, SECRET)}"}
        async with ws_client(srv.ws_url, additional_headers=headers) as client:
            assert (await client.frame())["type"] == "hello"


async def test_a_user_never_receives_events_of_a_workspace_they_are_not_in(database_url: str) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    ws_alice = make_workspace(database_url, [alice])
    ws_shared = make_workspace(database_url, [alice, bob])
    async with (
        served_hub(database_url) as srv,
        ws_client(ws_url(srv.ws_url, alice)) as a,
        ws_client(ws_url(srv.ws_url, bob)) as b,
    ):
        await a.frame(), await b.frame()
        await publish_events(database_url, ws_alice, 3, per_tx=3)
        await publish_events(database_url, ws_alice, 1, size=20_000)  # by reference
        await publish_events(database_url, ws_shared, 1)
        got_a, got_b = await a.events(5), await b.events(1)
        assert {e["payload"]["workspace_id"] for e in got_a} == {str(ws_alice), str(ws_shared)}
        assert [e["payload"]["workspace_id"] for e in got_b] == [str(ws_shared)]
        assert got_b[0]["id"] == 1  # bob's own stream
        await b.silent(0.5)
    # Resuming from 0 does not leak them either.
    async with served_hub(database_url) as srv, ws_client(ws_url(srv.ws_url, bob, last_event_id=0)) as b:
        assert (await b.frame())["payload"]["last_event_id"] == 1
        assert [e["payload"]["workspace_id"] for e in await b.events(1)] == [str(ws_shared)]
        await b.silent(0.3)


# -- resume and resync ---------------------------------------------------------------


async def test_resume_replays_exactly_the_missed_events_then_live(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv:
        async with ws_client(ws_url(srv.ws_url, user)) as client:
            await client.frame()
            await publish_events(database_url, workspace, 5)
            seen = await client.events(5)
        last = seen[-1]["id"]
        # Away: 100 events, inline and by reference (large), in various transactions.
        await publish_events(database_url, workspace, 60, per_tx=4)
        await publish_events(database_url, workspace, 10, size=9_000)
        await publish_events(database_url, workspace, 30, per_tx=30)

        async with ws_client(ws_url(srv.ws_url, user, last_event_id=last)) as client:
            hello = await client.frame()
            assert hello["payload"]["last_event_id"] == last + 100
            # Live events published during the replay are interleaved in order, once.
            publisher = asyncio.create_task(publish_events(database_url, workspace, 20, per_tx=2))
            replay = await client.events(120)
            await publisher
            assert [e["id"] for e in replay] == list(range(last + 1, last + 121))
            await client.silent(0.3)
            await publish_events(database_url, workspace, 1)
            assert [e["id"] for e in await client.events(1)] == [last + 121]


async def test_resume_before_retained_history_gets_resync_required_then_live(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    await publish_events(database_url, workspace, 30, per_tx=10)
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await EventLog(conn).prune(max_age_seconds=3600, max_per_user=10) == 20
    async with served_hub(database_url) as srv:
        async with ws_client(ws_url(srv.ws_url, user, last_event_id=5)) as client:
            assert (await client.frame())["payload"]["last_event_id"] == 30
            assert await client.frame() == {"type": "resync_required", "payload": {"oldest_event_id": 21}}
            await client.silent(0.3)  # no partial replay
            await publish_events(database_url, workspace, 2)
            assert [e["id"] for e in await client.events(2)] == [31, 32]
        # Exactly at the boundary: a complete replay is possible.
        async with ws_client(ws_url(srv.ws_url, user, last_event_id=20)) as client:
            await client.frame()
            assert [e["id"] for e in await client.events(12)] == list(range(21, 33))
        # Ahead of the stream (bogus id): resync, then live.
        async with ws_client(ws_url(srv.ws_url, user, last_event_id=1000)) as client:
            await client.frame()
            assert (await client.frame())["type"] == "resync_required"
        # A malformed id: an error frame after hello, then live only.
        async with ws_client(ws_url(srv.ws_url, user, last_event_id="x1")) as client:
            assert (await client.frame())["type"] == "hello"
            frame = await client.frame()
            assert frame["type"] == "error" and frame["payload"]["code"] == "invalid_parameter"
            await publish_events(database_url, workspace, 1)
            assert [e["id"] for e in await client.events(1)] == [33]


async def test_listener_reconnect_replays_what_was_notified_while_it_was_down(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv, ws_client(ws_url(srv.ws_url, user)) as client:
        await client.frame()
        await srv.hub.listener.stop()  # these notifications are lost for good
        await publish_events(database_url, workspace, 7, per_tx=3)
        await client.silent(0.3)
        srv.hub.listener.start()
        assert [e["id"] for e in await client.events(7)] == list(range(1, 8))
        assert srv.hub.listener.reconnects == 1
        await publish_events(database_url, workspace, 1)
        assert [e["id"] for e in await client.events(1)] == [8]
        await client.silent(0.3)


async def test_listener_killed_by_the_server_reconnects_and_loses_nothing(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv, ws_client(ws_url(srv.ws_url, user)) as client:
        await client.frame()
        stop = asyncio.Event()

        async def keep_publishing() -> int:
            n = 0
            while not stop.is_set():
                await publish_events(database_url, workspace, 1)
                n += 1
                await asyncio.sleep(0.005)
            return n

        publisher = asyncio.create_task(keep_publishing())
        await asyncio.sleep(0.2)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query ILIKE 'LISTEN%%'"
            )
        await asyncio.sleep(0.5)
        stop.set()
        total = await publisher
        assert [e["id"] for e in await client.events(total)] == list(range(1, total + 1))
        assert srv.hub.listener.reconnects >= 1
        await client.silent(0.3)


# -- flow control and dead sockets ---------------------------------------------------


async def test_heartbeat_closes_a_silent_connection_and_keeps_a_live_one(database_url: str) -> None:
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with (
        served_hub(database_url, heartbeat_seconds=0.3) as srv,
        ws_client(ws_url(srv.ws_url, user)) as silent,
        ws_client(ws_url(srv.ws_url, user)) as alive,
    ):
        await silent.frame(), await alive.frame()
        started = time.monotonic()

        async def answer_pings() -> None:
            while True:
                frame = await alive.frame(skip_pings=False)
                if frame["type"] == "ping":
                    await alive.send({"type": "pong"})

        answering = asyncio.create_task(answer_pings())
        code, reason, frames = await silent.until_closed(5)
        assert (code, reason) == (4408, "heartbeat timeout")
        assert {"type": "ping"} in frames
        assert 0.5 < time.monotonic() - started < 2.0
        await asyncio.sleep(1.0)  # 3+ intervals: the answering client is still there
        assert not answering.done()
        answering.cancel()
        assert srv.hub.connection_count == 1


class StuckSocket:
    """A WebSocket whose peer never reads: every send after `free` blocks forever."""

    def __init__(self, free: int) -> None:
        self.sent: list[bytes] = []
        self.free = free
        self.closed: tuple[int, str] | None = None
        self.blocked = asyncio.Event()

    async def send_text(self, data: str) -> None:
        if len(self.sent) >= self.free:
            self.blocked.set()
            await asyncio.Event().wait()
        self.sent.append(data.encode())

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_stuck_connection_is_closed_4408_without_delaying_the_handler(database_url: str) -> None:
    """The backlog rule, at the unit level: the listener handler never waits on a socket."""
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with served_hub(database_url, queue_max=50) as srv:
        stuck = StuckSocket(free=3)
        conn = Connection(
            stuck,  # type: ignore[arg-type]
            user,
            pool=srv.hub.pool,
            queue_max=50,
            heartbeat_seconds=None,
            register=srv.hub._register,
            unregister=srv.hub._unregister,
        )
        serving = asyncio.create_task(conn.serve(None))
        await asyncio.sleep(0.2)
        assert len(stuck.sent) == 1  # hello
        created = datetime.now(UTC)

        def offer(ids: range) -> None:
            for i in ids:
                conn.offer(DeliveredEvent(id=i, type="document.deleted", payload={}, created_at=created))

        offer(range(1, 11))
        await asyncio.wait_for(stuck.blocked.wait(), 5)  # the writer is now blocked on the socket
        started = time.perf_counter()
        offer(range(11, 200))  # synchronous: returns at once although the socket is stuck
        assert time.perf_counter() - started < 0.1
        await asyncio.wait_for(serving, 10)
        assert stuck.closed == (4408, "send queue full")
        assert len(stuck.sent) == 3  # hello + 2 events, then stuck
        assert srv.hub.connection_count == 0


# -- REST resync and retention -------------------------------------------------------


async def test_rest_events_pagination_validation_and_resync(database_url: str) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    make_workspace(database_url, [other])
    await publish_events(database_url, workspace, 25, per_tx=5)
    auth = {"Authorization": f"Bearer {mint_token(user, SECRET)}"}
    async with (
        served_hub(database_url) as srv,
        httpx.AsyncClient(base_url=srv.http_url, headers=auth) as http,
    ):
        r = await http.get("/api/events", params={"after": 0, "limit": 10})
        body = r.json()
        assert r.status_code == 200
        assert [e["id"] for e in body["items"]] == list(range(1, 11))
        assert (body["last_event_id"], body["has_more"]) == (10, True)
        assert set(body["items"][0]) == {"id", "type", "payload", "created_at"}
        body = (await http.get("/api/events", params={"after": 20, "limit": 10})).json()
        assert [e["id"] for e in body["items"]] == [21, 22, 23, 24, 25]
        assert (body["last_event_id"], body["has_more"]) == (25, False)
        body = (await http.get("/api/events", params={"after": 15, "limit": 10})).json()
        assert (body["last_event_id"], body["has_more"]) == (25, False)
        body = (await http.get("/api/events", params={"after": 25})).json()
        assert body == {"items": [], "last_event_id": 25, "has_more": False}
        body = (await http.get("/api/events")).json()  # defaults: after=0, limit=500
        assert len(body["items"]) == 25 and not body["has_more"]

        bad_params: list[dict[str, str | int]] = [
            {"limit": 0},
            {"limit": 1001},
            {"limit": "ten"},
            {"after": -1},
            {"after": "x"},
        ]
        for params in bad_params:
            r = await http.get("/api/events", params=params)
            assert r.status_code == 400, params
            assert r.json()["error"]["code"] == "invalid_parameter"
        r = await http.get("/api/events", params={"limit": 1000})
        assert r.status_code == 200

        r = await http.get("/api/events", headers={"Authorization": "Bearer nope"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
        other_auth = {"Authorization": f"Bearer {mint_token(other, SECRET)}"}
        assert (await http.get("/api/events", headers=other_auth)).json()["items"] == []

        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            await EventLog(conn).prune(max_age_seconds=3600, max_per_user=5)
        r = await http.get("/api/events", params={"after": 3})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "resync_required"
        assert r.json()["oldest_event_id"] == 21
        body = (await http.get("/api/events", params={"after": 20})).json()
        assert [e["id"] for e in body["items"]] == [21, 22, 23, 24, 25]


async def test_retention_prunes_on_one_replica_at_a_time(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    await publish_events(database_url, workspace, 12, per_tx=12)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
        with psycopg.connect(database_url) as other_replica:
            other_replica.execute("SELECT pg_advisory_xact_lock(%s)", (PRUNE_LOCK_KEY,))
            assert await prune_once(pool, max_age_seconds=3600, max_per_user=4) is None  # skipped
            other_replica.rollback()  # releases the lock
        assert await prune_once(pool, max_age_seconds=3600, max_per_user=4) == 8
        assert await prune_once(pool, max_age_seconds=3600, max_per_user=4) == 0
        async with pool.connection() as conn:
            assert await EventLog(conn).stream_position(user) == (12, 9)
