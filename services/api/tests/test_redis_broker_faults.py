"""The Redis broker under faults, end to end: two real `rag-api` replicas on
EVENTBUS_BROKER=redis, a real redis-server (restarted or cut by the test), a publisher in
this process streaming 10,000 events, and a real WebSocket client per replica.

Whatever breaks mid-stream (Redis restarts, the replica whose relay forwards is killed,
every replica's subscription is cut, the publishing process is killed), every client ends with all 10,000 events: ids
consecutive from 1, none twice (docs/realtime.md, "Scaling out"), and no socket is closed:
the burst of live events right after an outage is read from the log with the outage's gap,
not counted as the client's backlog (docs/realtime.md, "Flow control"). The clients would
resume on a close, as the contract asks; the tests check that they never had to.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
import redis
from psycopg import AsyncConnection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from rag_core.events import DocumentStatusUpdated, Event
from rag_devstack.redis import RedisServer
from rag_eventbus import publish
from rag_testing.prometheus import metric_value
from rag_testing.seed import make_workspace
from rag_testing.wsclient import EventCollector

pytestmark = pytest.mark.anyio

N = 10_000
PER_TX = 10
FAULT_AT = 3_000  # events published before the fault
Api = Any


@pytest.fixture
def local_redis(redis_server: RedisServer | None) -> RedisServer:
    if redis_server is None:
        pytest.skip("restarts the local Redis server (not TEST_REDIS_URL or Docker's)")
    return redis_server


def redis_replicas(api_factory: Any, server: RedisServer, n: int = 2) -> list[Api]:
    env = {
        "EVENTBUS_BROKER": "redis",
        "REDIS_URL": server.url,
        "EVENTBUS_REDIS_PREFIX": f"test:{uuid.uuid4().hex[:8]}:",
    }
    return [api_factory(**env) for _ in range(n)]


async def stream(dsn: str, workspace: UUID, fault: Callable[[], Awaitable[None]], total: int = N) -> None:
    """`total` events, PER_TX per transaction; `fault` runs after FAULT_AT of them."""
    async with await AsyncConnection.connect(dsn) as conn:
        for start in range(0, total, PER_TX):
            if start == FAULT_AT:
                await fault()
            batch = [
                Event.of(
                    DocumentStatusUpdated(
                        workspace_id=workspace, document_id=uuid.uuid4(), status="parsing", error=None
                    )
                )
                for _ in range(PER_TX)
            ]
            async with conn.transaction():
                await publish(conn, batch)


def assert_all(events: list[dict[str, Any]]) -> None:
    assert_ids([e["id"] for e in events])


def assert_ids(got: list[int]) -> None:
    assert len(got) == len(set(got)), "an event was delivered twice"
    assert got == list(range(1, N + 1)), f"{len(got)} events, first gap near {_first_gap(got)}"


def _first_gap(got: list[int]) -> int | None:
    return next((i + 1 for i, v in enumerate(got) if v != i + 1), None)


async def metric(api: Api, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        return metric_value((await http.get(api.url + "/metrics")).text, name)


class ResumingClient:
    """A client as the contract asks one to behave: it reads every event and, when the socket
    closes, reconnects with its last id (each close is kept for the test to check)."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.ws_url, self.token = ws_url, token
        self.ids: list[int] = []
        self.closes: list[int | None] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ResumingClient:
        connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(connected))
        await asyncio.wait_for(connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self, connected: asyncio.Event) -> None:
        while True:
            query = f"token={self.token}" + (f"&last_event_id={self.ids[-1]}" if self.ids else "")
            try:
                async with connect(f"{self.ws_url}?{query}", max_size=None) as ws:
                    async for message in ws:
                        frame = orjson.loads(message)
                        if frame.get("type") == "hello":
                            connected.set()
                        elif "id" in frame and frame.get("type") != "pong":
                            self.ids.append(frame["id"])
            except ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd else None)
            except OSError:
                self.closes.append(None)
            await asyncio.sleep(0.1)

    async def wait_for(self, n: int, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.ids) < n:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.ids)} of {n} events in {timeout}s; closes {self.closes}")
            await asyncio.sleep(0.05)


async def relay_is_active(api: Api) -> bool:
    return await metric(api, "rag_api_redis_relay_active") == 1.0


async def two_clients(api_factory: Any, server: RedisServer) -> tuple[list[Api], UUID, tuple[UUID, UUID]]:
    apis = redis_replicas(api_factory, server)
    owner, member = apis[0].user(), apis[1].user()
    workspace = make_workspace(apis[0].database_url, [owner.id, member.id])
    return apis, UUID(str(workspace)), (owner.id, member.id)


async def test_a_redis_restart_mid_stream_loses_and_repeats_nothing(
    api_factory: Any, local_redis: RedisServer
) -> None:
    apis, workspace, (owner, member) = await two_clients(api_factory, local_redis)
    async with (
        ResumingClient(apis[0].ws_url, apis[0].token(owner)) as on_first,
        ResumingClient(apis[1].ws_url, apis[1].token(member)) as on_second,
    ):

        async def restart_redis() -> None:
            await asyncio.to_thread(local_redis.restart, 0.5)

        await stream(apis[0].database_url, workspace, restart_redis)
        for client in (on_first, on_second):
            await client.wait_for(N, timeout=120)
            await asyncio.sleep(0.3)  # anything late and extra would arrive now
            assert_ids(client.ids)
            assert client.closes == []


async def test_killing_the_replica_whose_relay_forwards_loses_nothing(
    api_factory: Any, local_redis: RedisServer
) -> None:
    apis, workspace, (owner, member) = await two_clients(api_factory, local_redis)
    active = [api for api in apis if await relay_is_active(api)]
    assert len(active) == 1, "exactly one relay forwards"
    doomed = active[0]
    survivor = apis[1] if doomed is apis[0] else apis[0]
    async with (
        EventCollector(doomed.ws_url, doomed.token(owner)) as on_doomed,
        EventCollector(survivor.ws_url, survivor.token(member)) as on_survivor,
    ):

        async def kill_the_relay() -> None:
            doomed.process.kill()  # SIGKILL: its queued notices die with it

        await stream(survivor.database_url, workspace, kill_the_relay)
        await on_survivor.wait_until(lambda: len(on_survivor.events) >= N, timeout=120)
        await asyncio.sleep(0.3)
        assert_all(on_survivor.events)
        assert await relay_is_active(survivor)  # it took over
        before = on_doomed.events
    # The owner's socket died with its replica; it resumes on the survivor from its last id.
    last = before[-1]["id"] if before else 0
    async with EventCollector(survivor.ws_url, f"{survivor.token(owner)}&last_event_id={last}") as resumed:
        await resumed.wait_until(lambda: len(before) + len(resumed.events) >= N, timeout=60)
        await asyncio.sleep(0.3)
        assert_all(before + resumed.events)


async def test_cutting_every_replicas_subscription_mid_stream_loses_nothing(
    api_factory: Any, local_redis: RedisServer
) -> None:
    apis, workspace, (owner, member) = await two_clients(api_factory, local_redis)
    admin = redis.Redis.from_url(local_redis.url)
    async with (
        ResumingClient(apis[0].ws_url, apis[0].token(owner)) as on_first,
        ResumingClient(apis[1].ws_url, apis[1].token(member)) as on_second,
    ):

        async def cut_subscriptions() -> None:
            killed = await asyncio.to_thread(admin.client_kill_filter, _type="pubsub")
            assert killed == 2  # one subscription per replica

        await stream(apis[0].database_url, workspace, cut_subscriptions)
        for client in (on_first, on_second):
            await client.wait_for(N, timeout=120)
            await asyncio.sleep(0.3)
            assert_ids(client.ids)
            assert client.closes == []
    errors = [await metric(api, "rag_api_redis_subscriber_errors") for api in apis]
    assert errors == [1.0, 1.0]  # each replica noticed, reconnected and refilled


# A producer of its own process, publishing PER_TX events per transaction until it is killed.
PUBLISHER = """
import asyncio, sys, uuid
from psycopg import AsyncConnection
from rag_core.events import DocumentStatusUpdated, Event
from rag_eventbus import publish

async def main(dsn: str, workspace: uuid.UUID, per_tx: int) -> None:
    async with await AsyncConnection.connect(dsn) as conn:
        while True:
            batch = [
                Event.of(DocumentStatusUpdated(
                    workspace_id=workspace, document_id=uuid.uuid4(), status="parsing", error=None))
                for _ in range(per_tx)
            ]
            async with conn.transaction():
                await publish(conn, batch)

asyncio.run(main(sys.argv[1], uuid.UUID(sys.argv[2]), int(sys.argv[3])))
"""


async def test_a_publisher_killed_mid_stream_loses_nothing_it_committed(
    api_factory: Any, local_redis: RedisServer
) -> None:
    """SIGKILL lands anywhere in the producer's loop (before, during or just after a commit):
    whatever it committed reaches every client, in order, once; whatever it did not, nobody
    sees. There is no publish after the commit to be lost: the NOTIFY is part of it."""
    apis, workspace, (owner, member) = await two_clients(api_factory, local_redis)
    async with (
        ResumingClient(apis[0].ws_url, apis[0].token(owner)) as on_first,
        ResumingClient(apis[1].ws_url, apis[1].token(member)) as on_second,
    ):
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PUBLISHER, apis[0].database_url, str(workspace), str(PER_TX)
        )
        try:
            await on_first.wait_for(FAULT_AT, timeout=60)
        finally:
            producer.kill()
            await producer.wait()
        committed = apis[0].sql("SELECT coalesce(max(id), 0) FROM events WHERE user_id = %s", (owner,))[0][0]
        assert FAULT_AT <= committed < N and committed % PER_TX == 0  # whole transactions only
        # A producer after the crash: delivery goes on, the crashed one's events first.
        await stream(apis[0].database_url, workspace, fault=_nothing, total=N - committed)
        for client in (on_first, on_second):
            await client.wait_for(N, timeout=120)
            await asyncio.sleep(0.3)
            assert_ids(client.ids)
            assert client.closes == []


async def _nothing() -> None:
    return None
