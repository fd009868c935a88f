"""An api replica's side of the Redis broker: the channels of the users it holds.

One pub/sub connection per Redis server: one for a standalone server, one per primary of a
Redis Cluster (redis_topology.py: each user's channel lives on its slot's primary). It
SSUBSCRIBEs to `<prefix>u:<user>` while the replica holds at least one socket of that user
(`add` / `remove`, counted) and every connection SUBSCRIBEs to the refill channel (a plain
PUBLISH reaches every node of a cluster; only the first connection acts on it). Each user
message goes to `on_notice` (a `rag_realtime` notice: the hub decodes it as it decodes
Postgres' notifications).

The connections are one subscription: when any of them fails, or a cluster moves one of
its channels elsewhere (a server-sent SUNSUBSCRIBE, a MOVED refusal), all are closed, the
map is read again and everything is subscribed anew, followed by a refill, and on a cluster
by a second one SETTLE_SECONDS later (a publisher may still reach the old primary meanwhile).

Where messages may have been missed, the owner is told to read from the log instead:
- `on_refill(cause)` after every (re)connection ("reconnect": whatever was published
  meanwhile is lost) and for every refill message of the relay ("refill");
- `on_subscribed(user)` once the subscription of a user new to this replica is confirmed:
  an event published between the socket reading its start position and that confirmation
  reached no one here.
Handlers are plain functions that must not block (they hand work to tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Literal
from uuid import UUID

import structlog
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from rag_eventbus.redis_topology import REDIS_ERRORS, Topology, discover, server_pool
from rag_eventbus.redis_wire import REDIS_RETRY, refill_channel, user_channel

log = structlog.get_logger("rag_eventbus.redis_subscriber")

RefillCause = Literal["reconnect", "refill"]
HEALTH_SECONDS = 15.0  # a quiet connection is pinged this often
# After a cluster's map has changed, publishers' clients may still send to the old primary
# for a moment, and what it accepts then reaches nobody: a second refill this long after
# the new subscription reads those events back.
SETTLE_SECONDS = 2.0


class _MapChanged(Exception):
    """A cluster unsubscribed a channel this replica still wants: its slot moved."""


class RedisSubscriber:
    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str,
        on_notice: Callable[[bytes], None],
        on_refill: Callable[[RefillCause], None],
        on_subscribed: Callable[[UUID], None],
    ) -> None:
        # No retries inside redis-py: its pub/sub reconnects and resubscribes silently, and a
        # reconnection this class does not see would skip the refill that must follow it.
        self._url = redis_url
        self._pool = ConnectionPool.from_url(redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5)
        self._prefix = prefix
        self._on_notice = on_notice
        self._on_refill = on_refill
        self._on_subscribed = on_subscribed
        self._refill = refill_channel(prefix).encode()
        self._users: dict[UUID, int] = {}
        self._by_channel: dict[bytes, UUID] = {}
        # The live subscription: the map, and a pub/sub connection per server of it.
        self._topology: Topology | None = None
        self._links: list[PubSub] = []
        # SUNSUBSCRIBEs sent and not yet confirmed, by channel: any other is the server's.
        self._unsubscribing: dict[bytes, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._commands: set[asyncio.Task[Any]] = set()
        self._connected = asyncio.Event()
        # Counters for the api's metrics (rag_api.metrics).
        self.connects = 0
        self.errors = 0
        self.refills = 0  # refill messages received

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-subscriber")

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for command in list(self._commands):
            command.cancel()
        self._connected.clear()
        await self._pool.aclose()

    def add(self, user_id: UUID) -> None:
        """A socket of `user_id` opened here: subscribe to the user's channel if it is the first."""
        count = self._users.get(user_id, 0)
        self._users[user_id] = count + 1
        if count == 0:
            channel = user_channel(self._prefix, user_id)
            self._by_channel[channel.encode()] = user_id
            self._subscribe(channel)

    def remove(self, user_id: UUID) -> None:
        """A socket of `user_id` closed here: unsubscribe when it was the last."""
        count = self._users.get(user_id, 0)
        if count <= 1:
            self._users.pop(user_id, None)
            channel = user_channel(self._prefix, user_id)
            self._by_channel.pop(channel.encode(), None)
            if count == 1:
                self._unsubscribe(channel)
        else:
            self._users[user_id] = count - 1

    def _subscribe(self, channel: str) -> None:
        self._command(channel, lambda ps: ps.ssubscribe(channel))

    def _unsubscribe(self, channel: str) -> None:
        if self._command(channel, lambda ps: ps.sunsubscribe(channel)):
            key = channel.encode()  # its confirmation is ours, not the cluster's
            self._unsubscribing[key] = self._unsubscribing.get(key, 0) + 1

    def _command(self, channel: str, send: Callable[[PubSub], Any]) -> bool:
        """Send a (un)subscribe on the live connection that serves `channel` (False: none is
        live, and the next subscription subscribes to every current user anyway)."""
        topology, links = self._topology, self._links
        if topology is None or not links or not self.is_connected:
            return False
        pubsub = links[topology.server_of(channel)]

        async def run() -> None:
            try:
                await send(pubsub)
            except REDIS_ERRORS as exc:
                log.warning("redis_subscribe_failed", error=str(exc))  # the reader reconnects

        task = asyncio.create_task(run())
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)
        return True

    async def _run(self) -> None:
        failures = 0
        while True:
            links: list[PubSub] = []
            pools: list[ConnectionPool] = []
            settle: asyncio.Task[None] | None = None
            try:
                topology = await discover(self._url, self._pool)
                # Standalone: the one server of REDIS_URL; a cluster: each of its primaries.
                pools = (
                    [server_pool(self._pool, server) for server in topology.servers]
                    if topology.cluster
                    else []
                )
                links = [Redis(connection_pool=pool).pubsub() for pool in pools or [self._pool]]
                for pubsub in links:
                    await pubsub.subscribe(self._refill)
                channels = [user_channel(self._prefix, u) for u in self._users]
                for server, batch in topology.batches(channels):
                    await links[server].ssubscribe(*batch)
                self._topology, self._links = topology, links
                self._unsubscribing.clear()
                self.connects += 1
                self._connected.set()
                failures = 0
                self._catch_up_on_users(set(channels))
                log.info(
                    "redis_subscriber_connected",
                    connects=self.connects,
                    users=len(channels),
                    servers=[f"{host}:{port}" for host, port in topology.servers],
                    cluster=topology.cluster,
                )
                # Whatever was published while this replica was not subscribed is lost.
                self._safely(self._on_refill, "reconnect")
                if topology.cluster and self.connects > 1:
                    settle = asyncio.create_task(self._refill_later(), name="redis-subscriber-settle")
                await self._consume_all(links, initial={c.encode() for c in channels})
            except asyncio.CancelledError:
                raise
            except (*REDIS_ERRORS, _MapChanged) as exc:
                self.errors += 1
                log.warning(
                    "redis_subscriber_disconnected", error=str(exc), error_type=type(exc).__qualname__
                )
            finally:
                if settle is not None:
                    settle.cancel()  # the next subscription refills anyway
                self._connected.clear()
                self._topology, self._links = None, []
                for pubsub in links:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                for pool in pools:
                    with contextlib.suppress(Exception):
                        await pool.aclose()
            failures += 1
            await asyncio.sleep(REDIS_RETRY.backoff(failures))

    async def _refill_later(self) -> None:
        await asyncio.sleep(SETTLE_SECONDS)
        self._safely(self._on_refill, "reconnect")

    def _catch_up_on_users(self, subscribed: set[str]) -> None:
        """Users who came or went while the subscription was being made: (un)subscribe them
        now that commands reach the connections."""
        wanted = {user_channel(self._prefix, u) for u in self._users}
        for channel in wanted - subscribed:
            self._subscribe(channel)
        for channel in subscribed - wanted:
            self._unsubscribe(channel)

    async def _consume_all(self, links: list[PubSub], initial: set[bytes]) -> None:
        """Read every connection until one fails; its error ends them all."""
        readers = [
            asyncio.create_task(self._consume(pubsub, initial, refills=i == 0), name="redis-subscriber-read")
            for i, pubsub in enumerate(links)
        ]
        try:
            done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
            for reader in done:
                reader.result()  # raises what ended it
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _consume(self, pubsub: PubSub, initial: set[bytes], *, refills: bool) -> None:
        while True:
            message = await pubsub.get_message(timeout=HEALTH_SECONDS)
            if message is None:
                await pubsub.ping()  # quiet: prove the connection alive (an error reconnects)
                continue
            kind, channel = message["type"], message["channel"]
            if kind in ("smessage", "message"):
                if channel == self._refill:
                    if refills:  # every connection hears a refill; one acts on it
                        self.refills += 1
                        self._safely(self._on_refill, "refill")
                elif channel in self._by_channel:
                    self._safely(self._on_notice, message["data"])
            elif kind == "ssubscribe":
                if channel in initial:
                    initial.discard(channel)  # covered by the connection's refill
                elif channel in self._by_channel:
                    self._safely(self._on_subscribed, self._by_channel[channel])
            elif kind == "sunsubscribe":
                pending = self._unsubscribing.get(channel, 0)
                if pending > 1:
                    self._unsubscribing[channel] = pending - 1
                elif pending == 1:
                    del self._unsubscribing[channel]
                elif channel in self._by_channel:
                    # Not ours: the cluster moved the channel's slot to another primary.
                    raise _MapChanged(f"the cluster unsubscribed {channel!r}")

    def _safely(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:  # a handler's bug must not kill the subscription
            log.exception("redis_subscriber_handler_failed")
