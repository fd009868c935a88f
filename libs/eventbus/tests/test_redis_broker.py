"""The Redis broker's two halves against a real Postgres and a real Redis: the relay
(Postgres notifications onto per-user channels, one relay active) and a replica's
subscriber (only its users' channels, refills where messages may have been lost).

Each test runs on a standalone server and on a Redis Cluster of three primaries (the same
`REDIS_URL` setting names either); the cluster's own case, a channel's slot moved to another
primary mid-stream, is at the end."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from redis.crc import key_slot

from rag_devstack.redis import LocalRedisCluster, RedisServer
from rag_eventbus import EventLog, publish
from rag_eventbus.publish import decode_notice
from rag_eventbus.redis_relay import RedisRelay
from rag_eventbus.redis_subscriber import SETTLE_SECONDS, RedisSubscriber
from rag_eventbus.redis_wire import split_notice, user_channel

from .conftest import TestEvent, make_audience

pytestmark = pytest.mark.anyio


@dataclass
class Replica:
    """What an api replica's hub would see: user events, refills, confirmed subscriptions.

    With `dsn`, a refill, or a live event whose id skips some, reads the users' events from
    the log, as the hub does (ids already seen are skipped: live and read-back events meet in
    one ordered list per user)."""

    dsn: str | None = None
    events: dict[UUID, list[int]] = field(default_factory=dict)
    ranges: dict[UUID, list[tuple[int, int]]] = field(default_factory=dict)
    refills: int = 0
    reconnect_refills: int = 0  # the subscriber's own (the rest are the relay's)
    subscribed: list[UUID] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def on_notice(self, payload: bytes) -> None:
        notice = decode_notice(payload.decode())
        for user, event in notice.events:
            if self.dsn is not None and self._gap(user, event.id):
                # As the hub does: ids are consecutive, so a jump means some were lost on
                # the way; read them from the log (this event comes with them).
                self._spawn(self._read_back())
                continue
            self._add(user, event.id)
        for user, first, last in notice.ranges:
            self.ranges.setdefault(user, []).append((first, last))

    def _add(self, user: UUID, event_id: int) -> None:
        seen = self.events.setdefault(user, [])
        if not seen or event_id > seen[-1]:
            seen.append(event_id)

    def _gap(self, user: UUID, event_id: int) -> bool:
        seen = self.events.get(user, [])
        return event_id > (seen[-1] if seen else 0) + 1

    def on_refill(self, cause: str) -> None:
        self.refills += 1
        self.reconnect_refills += cause == "reconnect"
        if self.dsn is not None:
            self._spawn(self._read_back())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read_back(self) -> None:
        assert self.dsn is not None
        async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
            for user in list(self.events) + self.subscribed:
                seen = self.events.get(user, [])
                replay = await EventLog(conn).read_after(user, seen[-1] if seen else 0)
                for event in replay.events:
                    self._add(user, event.id)

    def on_subscribed(self, user: UUID) -> None:
        self.subscribed.append(user)


async def eventually(
    predicate: Callable[[], bool], timeout: float = 10, state: Callable[[], object] = lambda: ""
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached in time {state()}")
        await asyncio.sleep(0.01)


async def publish_to(dsn: str, audience: UUID, n: int = 1) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for _ in range(n):
            async with conn.transaction():
                await publish(conn, [TestEvent(audience=audience)])


@contextlib.asynccontextmanager
async def relay(dsn: str, redis_url: str, prefix: str, **options: float) -> AsyncIterator[RedisRelay]:
    r = RedisRelay(dsn, redis_url, prefix=prefix, **options)  # type: ignore[arg-type]
    r.start()
    try:
        yield r
    finally:
        await r.stop()


@contextlib.asynccontextmanager
async def subscriber(redis_url: str, prefix: str, replica: Replica) -> AsyncIterator[RedisSubscriber]:
    s = RedisSubscriber(
        redis_url,
        prefix=prefix,
        on_notice=replica.on_notice,
        on_refill=replica.on_refill,
        on_subscribed=replica.on_subscribed,
    )
    s.start()
    await s.wait_connected(10)
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
def prefix() -> str:
    """Channels of this test only: tests share the session's Redis."""
    return f"test:{uuid.uuid4().hex[:8]}:"


@pytest.fixture(params=["standalone", "cluster"])
def any_redis(request: pytest.FixtureRequest) -> str:
    """The session's standalone Redis, or a node of the session's Redis Cluster."""
    if request.param == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    return str(request.getfixturevalue("redis_url"))


def node_of(cluster: LocalRedisCluster, prefix: str, user: UUID) -> RedisServer:
    """The primary that serves `user`'s channel now."""
    return cluster.owner_of(key_slot(user_channel(prefix, user).encode()))


def users_on_every_node(cluster: LocalRedisCluster, prefix: str) -> list[UUID]:
    """Users whose channels, together, live on every primary."""
    by_node: dict[int, UUID] = {}
    while len(by_node) < len(cluster.nodes):
        user = uuid.uuid4()
        by_node.setdefault(node_of(cluster, prefix, user).port, user)
    return list(by_node.values())


def test_a_notice_splits_into_each_users_part_in_order() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    inline = f'{{"c":"2026-01-01T00:00:00Z","t":"tp","e":[["{a}",1,"x",{{}}],["{b}",7,"x",{{}}],["{a}",2,"y",{{}}]]}}'
    parts = dict(split_notice(inline))
    assert list(parts) == [a, b]
    assert [e.id for _, e in decode_notice(parts[a].decode()).events] == [1, 2]
    assert decode_notice(parts[b].decode()).events[0][1].traceparent == "tp"
    ranges = dict(split_notice(f'{{"r":[["{a}",3,9],["{b}",1,1]]}}'))
    assert decode_notice(ranges[a].decode()).ranges == [(UUID(a), 3, 9)]
    for bad in ("[]", '{"x":1}', "not json"):
        with pytest.raises(ValueError):
            list(split_notice(bad))


async def test_a_replica_receives_only_the_users_it_holds_in_order(
    bus_database_url: str, any_redis: str, prefix: str
) -> None:
    held, other = uuid.uuid4(), uuid.uuid4()
    both = make_audience(bus_database_url, [held, other])
    replica = Replica()
    async with relay(bus_database_url, any_redis, prefix) as r, subscriber(any_redis, prefix, replica) as s:
        await r.listener.wait_connected(10)
        s.add(held)
        await eventually(lambda: replica.subscribed == [held])
        await publish_to(bus_database_url, both, 50)
        await eventually(lambda: len(replica.events.get(held, [])) == 50)
    assert replica.events[held] == list(range(1, 51))
    assert other not in replica.events  # never sent to this replica, not even dropped here


async def test_in_a_cluster_users_on_every_primary_receive_their_events(
    bus_database_url: str, redis_cluster: LocalRedisCluster, prefix: str
) -> None:
    users = users_on_every_node(redis_cluster, prefix)
    audience = make_audience(bus_database_url, users)
    replica = Replica()
    url = redis_cluster.url
    async with relay(bus_database_url, url, prefix) as r, subscriber(url, prefix, replica) as s:
        await r.listener.wait_connected(10)
        for user in users:
            s.add(user)
        await eventually(lambda: sorted(replica.subscribed) == sorted(users))
        await publish_to(bus_database_url, audience, 20)
        await eventually(lambda: all(len(replica.events.get(u, [])) == 20 for u in users))
    assert all(replica.events[u] == list(range(1, 21)) for u in users)
    assert (s.connects, s.errors) == (1, 0)  # one subscription throughout: nothing rebuilt on the way


async def test_a_user_whose_last_socket_left_is_unsubscribed(
    bus_database_url: str, any_redis: str, prefix: str
) -> None:
    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    replica = Replica()
    async with relay(bus_database_url, any_redis, prefix) as r, subscriber(any_redis, prefix, replica) as s:
        await r.listener.wait_connected(10)
        s.add(user)
        s.add(user)  # two sockets
        await eventually(lambda: replica.subscribed == [user])
        s.remove(user)
        await publish_to(bus_database_url, audience)
        await eventually(lambda: replica.events.get(user) == [1])  # one socket left: still here
        s.remove(user)
        await asyncio.sleep(0.2)  # the unsubscribe is on its way
        await publish_to(bus_database_url, audience)
        await eventually(lambda: r.forwarded == 2)
        await asyncio.sleep(0.2)
    assert replica.events[user] == [1]
    assert s.errors == 0  # our own unsubscribe is not taken for the cluster's


async def test_one_relay_is_active_and_another_takes_over_with_a_refill(
    bus_database_url: str, any_redis: str, prefix: str
) -> None:
    redis_url = any_redis
    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    replica = Replica()
    async with subscriber(redis_url, prefix, replica) as s:
        s.add(user)
        await eventually(lambda: replica.subscribed == [user])
        refills_before = replica.refills
        first = RedisRelay(bus_database_url, redis_url, prefix=prefix, standby_interval=0.1)
        first.start()
        await first.listener.wait_connected(10)
        async with relay(bus_database_url, redis_url, prefix, standby_interval=0.1) as second:
            await asyncio.sleep(0.5)
            assert first.active and not second.active  # one relay forwards, not two
            await publish_to(bus_database_url, audience, 3)
            await eventually(lambda: replica.events.get(user) == [1, 2, 3])
            await first.stop()  # its session ends: the lock goes with it
            await second.listener.wait_connected(10)
            # The new relay says notices may have been missed, then forwards.
            await eventually(lambda: replica.refills > refills_before + 1)
            await publish_to(bus_database_url, audience, 2)
            await eventually(lambda: replica.events.get(user) == [1, 2, 3, 4, 5])


@pytest.fixture(params=["standalone", "cluster"])
def restartable(request: pytest.FixtureRequest, prefix: str) -> tuple[str, Callable[[UUID], RedisServer]]:
    """(URL, the server to restart for a user): the local standalone server, or the
    cluster's primary that serves the user's channel."""
    if request.param == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        return cluster.url, lambda user: node_of(cluster, prefix, user)
    server: RedisServer | None = request.getfixturevalue("redis_server")
    if server is None:
        pytest.skip("needs the local Redis server, which the test restarts (not TEST_REDIS_URL or Docker)")
    return server.url, lambda _user: server


async def test_a_redis_restart_costs_a_refill_on_both_sides_and_delivery_resumes(
    bus_database_url: str, restartable: tuple[str, Callable[[UUID], RedisServer]], prefix: str
) -> None:
    url, server_of = restartable
    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    replica = Replica(dsn=bus_database_url)
    async with (
        relay(bus_database_url, url, prefix) as r,
        subscriber(url, prefix, replica) as s,
    ):
        await r.listener.wait_connected(10)
        s.add(user)
        await eventually(lambda: replica.subscribed == [user])
        await publish_to(bus_database_url, audience, 2)
        await eventually(lambda: replica.events.get(user) == [1, 2])
        connects, refills = s.connects, replica.refills
        await asyncio.to_thread(server_of(user).restart, 0.5)
        await publish_to(bus_database_url, audience, 1)  # published while Redis was away, or just back
        await eventually(lambda: s.connects > connects, timeout=15)
        # The subscriber refilled (its connection is new): what Redis lost is read back.
        await eventually(lambda: replica.refills > refills)
        await eventually(lambda: replica.events.get(user) == [1, 2, 3])
        # Delivery resumes, live or covered by the relay's own refill after its failed publish.
        await publish_to(bus_database_url, audience, 2)
        await eventually(lambda: replica.events.get(user) == [1, 2, 3, 4, 5], timeout=15)


async def survives_a_map_change(
    dsn: str, url: str, prefix: str, user: UUID, change: Callable[[], object]
) -> None:
    """10 events, then `change` to the cluster's map (run in a thread), then 10 more: the
    subscriber rebuilds its subscription from the new map and every event arrives, in order."""
    audience = make_audience(dsn, [user])
    replica = Replica(dsn=dsn)
    async with relay(dsn, url, prefix) as r, subscriber(url, prefix, replica) as s:
        await r.listener.wait_connected(10)
        s.add(user)
        await eventually(lambda: replica.subscribed == [user])
        await publish_to(dsn, audience, 10)
        await eventually(lambda: replica.events.get(user) == list(range(1, 11)))
        connects, refills = s.connects, replica.reconnect_refills
        # The old primary tells its subscribers the channel is gone (SUNSUBSCRIBE); the
        # subscriber reads the map again, subscribes on the new one, then refills, and again
        # SETTLE_SECONDS later (a publisher may still have reached the old primary).
        await asyncio.to_thread(change)
        # The relay's next SPUBLISH is told MOVED; redis-py's cluster client follows it.
        await publish_to(dsn, audience, 10)
        await eventually(lambda: s.connects > connects, timeout=20)
        await eventually(
            lambda: replica.events.get(user) == list(range(1, 21)),
            timeout=20,
            state=lambda: (replica.events.get(user), s.connects, s.errors, r.forwarded, r.publish_errors),
        )
        await eventually(lambda: replica.reconnect_refills >= refills + 2, timeout=SETTLE_SECONDS + 5)


async def test_a_channel_whose_slot_moves_to_another_primary_loses_nothing(
    bus_database_url: str, redis_cluster: LocalRedisCluster, prefix: str
) -> None:
    user = uuid.uuid4()
    slot = key_slot(user_channel(prefix, user).encode())
    home = redis_cluster.owner_of(slot)
    elsewhere = next(node for node in redis_cluster.nodes if node is not home)
    try:
        await survives_a_map_change(
            bus_database_url,
            redis_cluster.url,
            prefix,
            user,
            lambda: redis_cluster.move_slot(slot, elsewhere),
        )
    finally:
        await asyncio.to_thread(redis_cluster.move_slot, slot, home)  # the session's map, as it was


async def test_a_failover_to_a_replica_mid_stream_loses_nothing(
    bus_database_url: str, tmp_path: Path, prefix: str
) -> None:
    """A managed cluster's maintenance: the primary of the user's channel hands over to its
    replica (CLUSTER FAILOVER)."""
    cluster = LocalRedisCluster(tmp_path / "cluster", size=3, replicas=1)
    await asyncio.to_thread(cluster.start)
    try:
        user = uuid.uuid4()
        primary = node_of(cluster, prefix, user)
        await survives_a_map_change(
            bus_database_url, cluster.url, prefix, user, lambda: cluster.fail_over(primary)
        )
    finally:
        await asyncio.to_thread(cluster.stop)
