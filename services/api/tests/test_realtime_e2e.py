"""Realtime end to end: real `rag-api` processes (api_factory), the real Postgres, a real
WebSocket client (`websockets`), events published by this test process (a third process).

The tests that depend on how notices travel run on both brokers (`broker_api_factory`:
Postgres LISTEN, and Redis through its relay and per-user channels).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import jwt
import pytest
from psycopg import AsyncConnection
from websockets.asyncio.client import connect

from rag_core.events import DocumentStatusUpdated, Event
from rag_devstack.postgres import EmbeddedPostgres
from rag_eventbus import EventLog, publish
from rag_testing.prometheus import metric_value
from rag_testing.seed import make_workspace
from rag_testing.wsclient import FrameClient

pytestmark = pytest.mark.anyio

Api = Any  # conftest's Api (tests import nothing from conftest)


@asynccontextmanager
async def ws_client(api: Api, user: UUID | None, **kwargs: Any) -> AsyncIterator[FrameClient]:
    """A socket on `api` for `user` (token in the query) with query params from `params`."""
    params: dict[str, Any] = kwargs.pop("params", {})
    if user is not None and "token" not in params:
        params = {"token": api.token(user), **params}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    async with connect(f"{api.ws_url}?{query}", open_timeout=10, close_timeout=2, **kwargs) as ws:
        yield FrameClient(ws)


def ids(frames: list[dict[str, Any]]) -> list[int]:
    return [f["id"] for f in frames]


async def publish_events(
    dsn: str, workspace: object, n: int, *, per_tx: int = 1, size: int = 0, random_bytes: bool = False
) -> None:
    """Publish `n` events from this process (`size`: length of a payload string)."""

    def text() -> str:
        if random_bytes:  # incompressible
            return base64.b64encode(os.urandom(size * 3 // 4)).decode()
        return "e" * size

    async with await AsyncConnection.connect(dsn) as conn:
        for start in range(0, n, per_tx):
            batch = [
                Event.of(
                    DocumentStatusUpdated(
                        workspace_id=UUID(str(workspace)),
                        document_id=uuid.uuid4(),
                        status="error",
                        error=text(),
                    )
                )
                for _ in range(min(per_tx, n - start))
            ]
            async with conn.transaction():
                await publish(conn, batch)


def delivery_count(api: Api) -> float:
    return metric_value(httpx.get(api.url + "/metrics").text, "rag_api_event_delivery_seconds_count")


# -- fan-out across replicas -----------------------------------------------------------


async def test_an_event_from_a_third_process_reaches_a_users_sockets_on_two_api_processes(
    broker_api_factory: Any,
) -> None:
    api1, api2 = broker_api_factory(), broker_api_factory()
    owner, member, stranger = api1.user(), api2.user(), api1.user()
    # Workspaces are seeded in SQL: through the api, each membership would publish its
    # workspace.member_added first (tests/e2e/test_live_membership.py), and ids here count from 1.
    workspace = make_workspace(api1.database_url, [owner.id, member.id])
    make_workspace(api1.database_url, [stranger.id])
    async with (
        ws_client(api1, owner.id) as owner_1,
        ws_client(api2, owner.id) as owner_2,
        ws_client(api2, member.id) as member_2,
        ws_client(api1, stranger.id) as stranger_1,
    ):
        for client in (owner_1, owner_2, member_2, stranger_1):
            hello = await client.frame()
            assert hello["type"] == "hello" and hello["payload"]["last_event_id"] == 0
        await publish_events(api1.database_url, workspace, 3, per_tx=3)  # one notification
        await publish_events(api1.database_url, workspace, 1, size=20_000)  # by reference
        got_1, got_2 = await owner_1.events(4), await owner_2.events(4)
        assert ids(got_1) == ids(got_2) == [1, 2, 3, 4]
        assert got_1 == got_2
        assert ids(await member_2.events(4)) == [1, 2, 3, 4]
        # A real upload through api2 reaches the owner's socket on api1 too.
        response = member.upload(workspace, [("notes.txt", b"hello realtime\n")])
        assert response.status_code == 201, response.text
        uploaded = await owner_1.events(2)
        assert [e["type"] for e in uploaded] == ["document.created", "job.status_updated"]
        assert ids(uploaded) == [5, 6]
        assert uploaded[1]["payload"]["status"] == "queued" and uploaded[1]["payload"]["job_type"] == "parse"
        assert ids(await owner_2.events(2)) == [5, 6]
        await stranger_1.silent(0.5)  # not a member: nothing at all


# -- resume ----------------------------------------------------------------------------


async def test_resume_after_100_missed_events_then_live_and_resync_from_pruned_history(
    broker_api_factory: Any,
) -> None:
    api1, api2 = broker_api_factory(), broker_api_factory()
    user = api1.user()
    workspace = make_workspace(api1.database_url, [user.id])
    dsn = api1.database_url
    async with ws_client(api1, user.id) as client:
        await client.frame()
        await publish_events(dsn, workspace, 5)
        last = ids(await client.events(5))[-1]
    # Disconnected: 100 events, in small and large transactions, some too big for NOTIFY.
    await publish_events(dsn, workspace, 50, per_tx=5)
    await publish_events(dsn, workspace, 10, size=10_000)
    await publish_events(dsn, workspace, 40, per_tx=40)
    # Resume on the other replica, while more events are being published.
    delivered_before = delivery_count(api2)
    async with ws_client(api2, user.id, params={"last_event_id": last}) as client:
        hello = await client.frame()
        assert hello["payload"]["last_event_id"] == last + 100
        live = asyncio.create_task(publish_events(dsn, workspace, 10, per_tx=2))
        got = await client.events(110)
        await live
        assert ids(got) == list(range(last + 1, last + 111)), "exactly the missed events, then live, once"
        await client.silent(0.5)
    # The delivery-latency histogram counts the 10 live events, not the 100 of the replay.
    assert delivery_count(api2) - delivered_before == 10

    # Retention removed all but the newest 20: a resume from before gets resync_required.
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        await EventLog(conn).prune(max_age_seconds=86400, max_per_user=20)
    async with ws_client(api1, user.id, params={"last_event_id": last}) as client:
        hello = await client.frame()
        assert hello["payload"]["last_event_id"] == 115
        assert await client.frame() == {
            "type": "resync_required",
            "payload": {"oldest_event_id": 96, "epoch": hello["payload"]["epoch"]},
        }
        await client.silent(0.3)  # never a partial replay
        await publish_events(dsn, workspace, 2)
        assert ids(await client.events(2)) == [116, 117]
    # REST says the same thing.
    r = user.client.get("/api/events", params={"after": last})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "resync_required" and r.json()["oldest_event_id"] == 96
    body = user.client.get("/api/events", params={"after": 95, "limit": 20}).json()
    assert ids(body["items"]) == list(range(96, 116)) and body["has_more"] is True
    assert body["last_event_id"] == 115


# -- flow control ----------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_closed_4408_and_another_keeps_up(
    broker_api_factory: Any,
) -> None:
    api = broker_api_factory(WS_SEND_QUEUE_MAX="20")
    user = api.user()
    workspace = make_workspace(api.database_url, [user.id])
    n, size = 300, 100_000  # 30 MB of incompressible payloads: more than the TCP buffers hold
    # The slow client: no compression, flow control at one frame, no protocol pings (a
    # stuck client); it reads nothing until the end.
    async with (
        ws_client(api, user.id, compression=None, max_queue=1, ping_interval=None) as slow,
        ws_client(api, user.id, compression=None, max_size=None) as fast,
    ):
        await slow.frame(), await fast.frame()
        received: list[int] = []
        arrival: dict[int, float] = {}

        async def read_fast() -> None:
            while len(received) < n:
                event = (await fast.events(1, timeout=30))[0]
                received.append(event["id"])
                arrival[event["id"]] = time.monotonic()

        reader = asyncio.create_task(read_fast())
        published: dict[int, float] = {}
        async with await AsyncConnection.connect(api.database_url) as conn:
            for i in range(1, n + 1):
                payload = base64.b64encode(os.urandom(size * 3 // 4)).decode()
                event = Event.of(
                    DocumentStatusUpdated(
                        workspace_id=workspace, document_id=uuid.uuid4(), status="error", error=payload
                    )
                )
                async with conn.transaction():
                    await publish(conn, [event])
                published[i] = time.monotonic()
        await asyncio.wait_for(reader, 30)
        assert received == list(range(1, n + 1))
        lags = sorted(arrival[i] - published[i] for i in range(1, n + 1))
        assert lags[int(n * 0.95)] < 1.0, f"the fast client lagged: p95 {lags[int(n * 0.95)]:.3f}s"

        code, _, frames = await slow.until_closed(timeout=30)
        assert code == 4408
        slow_ids = ids([f for f in frames if "id" in f])
        assert slow_ids == list(range(1, len(slow_ids) + 1)), "consecutive up to the close"
        assert len(slow_ids) < n, "the slow client was closed before it got everything"

    # It reconnects with its last id and loses nothing.
    async with ws_client(api, user.id, params={"last_event_id": slow_ids[-1]}, max_size=None) as again:
        await again.frame()
        assert ids(await again.events(n - slow_ids[-1], timeout=30)) == list(range(slow_ids[-1] + 1, n + 1))
    async with httpx.AsyncClient() as http:
        closes = (await http.get(api.url + "/metrics")).text
    assert 'rag_api_websocket_closes_total{code="4408"} 1.0' in closes


# -- Postgres restart ------------------------------------------------------------------


async def test_postgres_restart_readyz_recovers_and_nothing_is_lost(
    broker_api_factory: Any, pg_server: EmbeddedPostgres | None
) -> None:
    if pg_server is None:
        pytest.skip("TEST_DATABASE_URL is set: the test server cannot be restarted from here")
    api = broker_api_factory()
    user = api.user()
    workspace = make_workspace(api.database_url, [user.id])
    dsn = api.database_url
    ready_url = api.url + "/readyz"
    broker = httpx.get(ready_url).json()["broker"]  # noqa: ASYNC210 (before anything runs)
    async with ws_client(api, user.id) as client:
        await client.frame()
        await publish_events(dsn, workspace, 5)
        assert ids(await client.events(5)) == [1, 2, 3, 4, 5]

        statuses: list[int] = []

        async def watch_readyz() -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        statuses.append((await http.get(ready_url)).status_code)
                    await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch_readyz())
        await asyncio.to_thread(pg_server.restart, 1.0)
        # Published right after the restart, possibly before the api's listener is back.
        await publish_events(dsn, workspace, 20, per_tx=2)
        # The Postgres broker's /readyz is 503 until its listener is back (seconds of backoff);
        # the Redis broker's only while the database does not answer, which a probe may miss.
        saw_503 = (lambda: 503 in statuses) if broker == "postgres" else (lambda: True)
        deadline = time.monotonic() + 30
        while not (saw_503() and statuses and statuses[-1] == 200):
            assert time.monotonic() < deadline, f"/readyz did not recover: {statuses[-10:]}"
            await asyncio.sleep(0.1)
        watcher.cancel()
        if broker == "postgres":
            assert statuses.index(503) < len(statuses) - 1
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(api.url + "/metrics")).text
        assert "rag_api_listener_connected 1.0" in metrics
        if broker == "postgres":
            assert metric_value(metrics, "rag_api_listener_reconnects") >= 1
        else:
            # The replica's Redis subscription never dropped; its relay's LISTEN did, and on
            # coming back it asks every replica to refill (its first refill was at start).
            # /readyz does not wait for the relay (it is the cluster's, not this replica's).
            deadline = time.monotonic() + 20
            while metric_value(metrics, "rag_api_redis_relay_refills") < 2:
                assert time.monotonic() < deadline, "the relay did not refill after the restart"
                await asyncio.sleep(0.2)
                async with httpx.AsyncClient() as http:
                    metrics = (await http.get(api.url + "/metrics")).text

        # The socket survived the restart (it does not depend on Postgres): the hub's
        # catch-up after the listener reconnected delivers what the lost NOTIFYs carried.
        assert ids(await client.events(20, timeout=20)) == list(range(6, 26))
    # And a client that resumes with its last id loses nothing either.
    async with ws_client(api, user.id, params={"last_event_id": 5}) as client:
        assert (await client.frame())["payload"]["last_event_id"] == 25
        assert ids(await client.events(20)) == list(range(6, 26))
        await publish_events(dsn, workspace, 1)
        assert ids(await client.events(1)) == [26]


# -- auth and protocol against the real app ----------------------------------------------


async def test_bad_tokens_ping_pong_and_malformed_frames_on_a_real_api(api: Any) -> None:
    user = api.user()
    workspace = make_workspace(api.database_url, [user.id])
    now = int(time.time())
    claims = {"sub": str(user.id), "iat": now, "exp": now + 600}
    bad_tokens = [
        api.token(user.id, ttl_seconds=-60),  # expired
        jwt.encode(claims, "not-the-secret-not-the-secret-not-the-secret", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "",  # missing
    ]
    for token in bad_tokens:
        async with ws_client(api, None, params={"token": token} if token else {}) as client:
            await publish_events(api.database_url, workspace, 1)
            assert (await client.until_closed(timeout=10))[::2] == (4401, [])

    headers = {"Authorization": f"Bearer {api.token(user.id)}"}
    async with ws_client(api, None, additional_headers=headers) as client:
        hello = await client.frame()
        assert hello["payload"] == {
            "user_id": str(user.id),
            "epoch": hello["payload"]["epoch"],
            "last_event_id": 4,
        }
        await client.send({"type": "ping"})
        assert await client.frame() == {"type": "pong"}
        await client.send("{oops")
        error = await client.frame()
        assert error["type"] == "error" and error["payload"]["code"] == "invalid_json"
        await client.send({"type": "subscribe", "channel": "everything"})
        assert (await client.frame())["payload"]["code"] == "unknown_type"
        await publish_events(api.database_url, workspace, 1)
        assert ids(await client.events(1)) == [5], "still open and delivering"
