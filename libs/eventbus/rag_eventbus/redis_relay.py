"""The relay of the Redis broker: `rag_realtime` notifications onto per-user Redis channels.

Producers do not change with the broker: they publish in their transaction, and the
NOTIFY is part of its commit (it cannot be lost between the commit and a publish to
Redis). One relay LISTENs and forwards each notification, split by user
(`redis_wire.split_notice`), so Postgres delivers each notification once, not once per
api replica. Every api replica runs a relay; one is active, the holder of a session
advisory lock on its LISTEN connection (`Listener(exclusive=...)`); the others wait
connected and one takes over within about a second when the active one's session ends.

Nothing is lost when a notification is: whenever notifications may have been missed (this
relay has just started listening, its LISTEN connection came back, or Redis refused a
publish), the relay publishes a refill message, and every replica reads each local user's
gap from the log. Redis being down only delays events; publishing resumes, refill first,
when it is back, and the refill stands for every notice queued until then.

When `REDIS_URL` is a node of a Redis Cluster, the relay publishes through redis-py's
cluster client, which sends each SPUBLISH to its channel's primary and follows the
cluster's changes itself; after a failed publish it asks the server again what it is.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis, RedisCluster

from rag_eventbus.listener import Listener
from rag_eventbus.publish import REALTIME_CHANNEL
from rag_eventbus.redis_topology import REDIS_ERRORS, cluster_client, is_cluster_node
from rag_eventbus.redis_wire import REDIS_RETRY, REFILL_MESSAGE, refill_channel, split_notice, user_channel

log = structlog.get_logger("rag_eventbus.redis_relay")

# The advisory lock the active relay holds ("ragrelay" as a number): one relay per database.
RELAY_LOCK_KEY = int.from_bytes(b"ragrelay", "big") & (2**63 - 1)
# Notifications waiting for Redis; beyond this they are dropped and a refill covers them.
QUEUE_MAX = 10_000


class RedisRelay:
    """Forward `rag_realtime` to Redis while this process holds the relay lock."""

    def __init__(
        self,
        listen_dsn: str,
        redis_url: str,
        *,
        prefix: str,
        lock_key: int = RELAY_LOCK_KEY,
        standby_interval: float = 1.0,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self._url = redis_url
        self._redis: Redis | RedisCluster | None = None  # made on the first publish
        self._prefix = prefix
        self._queue: asyncio.Queue[str] = asyncio.Queue(queue_max)
        self._pending = asyncio.Event()
        self._refill_due = False
        self._task: asyncio.Task[None] | None = None
        self.listener = Listener(
            listen_dsn,
            {REALTIME_CHANNEL: self._on_notice},
            on_reconnect=self._on_listening,
            exclusive=lock_key,
            standby_interval=standby_interval,
            name="redis-relay",
        )
        # Counters for the api's metrics (rag_api.metrics).
        self.forwarded = 0  # notifications published to Redis
        self.publish_errors = 0
        self.refills = 0  # refill messages published
        self.dropped = 0  # notifications dropped while the queue was full

    @property
    def active(self) -> bool:
        """This relay holds the lock and listens (False: standing by, or reconnecting)."""
        return self.listener.is_connected

    def start(self) -> None:
        if self._task is None:
            self.listener.start()
            self._task = asyncio.create_task(self._send_loop(), name="redis-relay-send")

    async def stop(self) -> None:
        await self.listener.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._redis is not None:
            await self._redis.aclose()

    def _on_notice(self, payload: str) -> None:
        """The listener's handler: queue it, never block."""
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped += 1
            self._refill_due = True
        self._pending.set()

    def _on_listening(self) -> None:
        """Listening again (or for the first time): what was notified before is not ours to forward."""
        self._refill_due = True
        self._pending.set()

    async def _send_loop(self) -> None:
        failures = 0
        while True:
            await self._pending.wait()
            self._pending.clear()
            batch: list[str] = []
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._send(await self._client(), batch)
                failures = 0
            except Exception as exc:
                # This batch is gone: the refill published once Redis answers covers it. Any
                # error, not only Redis' own: a relay whose loop died would hold the lock forever.
                self.publish_errors += 1
                self._refill_due = True
                failures += 1
                await self._forget_client()  # the next try asks again what the server is
                log.warning(
                    "redis_relay_publish_failed",
                    error=str(exc),
                    error_type=type(exc).__qualname__,
                    notices=len(batch),
                    exc_info=not isinstance(exc, REDIS_ERRORS),
                )
                await asyncio.sleep(REDIS_RETRY.backoff(failures))
                self._pending.set()

    async def _client(self) -> Redis | RedisCluster:
        """The client to publish with, made once the server has said whether it is a cluster's node."""
        if self._redis is None:
            plain = Redis.from_url(self._url, socket_connect_timeout=5, socket_timeout=5)
            try:
                cluster = await is_cluster_node(plain.connection_pool)  # the map is the client's
            except BaseException:
                await plain.aclose()
                raise
            if cluster:
                await plain.aclose()
                self._redis = cluster_client(self._url, socket_connect_timeout=5, socket_timeout=5)
            else:
                self._redis = plain
        return self._redis

    async def _forget_client(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _send(self, redis: Redis | RedisCluster, batch: list[str]) -> None:
        if self._refill_due:
            # The refill covers every notice queued before it: their events are committed, so
            # each replica's read of the log after the refill finds them. Sending them too
            # would only burst the backlog of an outage onto the sockets.
            await redis.publish(refill_channel(self._prefix), REFILL_MESSAGE)
            self._refill_due = False
            self.refills += 1
            return
        pipe = redis.pipeline(transaction=False)
        for payload in batch:
            try:
                parts = list(split_notice(payload))
            except (ValueError, KeyError, IndexError, TypeError):
                log.error("redis_relay_bad_notice", size=len(payload))
                continue
            for user, message in parts:
                pipe.spublish(user_channel(self._prefix, user), message)
        if batch:
            await pipe.execute()
            self.forwarded += len(batch)
