"""What the hub guarantees across gaps: resume, resync, listener reconnects, REST replay, retention."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from rag_api.locks import PRUNE_LOCK_KEY
from rag_api.realtime.retention import prune_once
from rag_core.tokens import mint_token
from rag_eventbus import EventLog
from rag_testing.seed import make_workspace

from .realtime_harness import SECRET, publish_events, served_hub, ws_client, ws_url

pytestmark = pytest.mark.anyio


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
            hello = await client.frame()
            assert hello["payload"]["last_event_id"] == 30
            assert await client.frame() == {
                "type": "resync_required",
                "payload": {"oldest_event_id": 21, "epoch": hello["payload"]["epoch"]},
            }
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
        assert body == {"items": [], "last_event_id": 25, "has_more": False, "epoch": body["epoch"]}
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
            position = await EventLog(conn).stream_position(user)
            assert (position.last_id, position.oldest_id) == (12, 9)
