"""An api replica's side of the Redis broker: the channels of the users it holds.

One pub/sub connection per replica. It SSUBSCRIBEs to `<prefix>u:<user>` while the replica
holds at least one socket of that user (`add` / `remove`, counted) and SUBSCRIBEs to the
refill channel. Each user message goes to `on_notice` (a `rag_realtime` notice: the hub
decodes it as it decodes Postgres' notifications).

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
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from rag_eventbus.redis_wire import REDIS_RETRY, refill_channel, user_channel

log = structlog.get_logger("rag_eventbus.redis_subscriber")

RefillCause = Literal["reconnect", "refill"]
HEALTH_SECONDS = 15.0  # a quiet connection is pinged this often


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
        self._redis = Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5)
        self._prefix = prefix
        self._on_notice = on_notice
        self._on_refill = on_refill
        self._on_subscribed = on_subscribed
        self._refill = refill_channel(prefix).encode()
        self._users: dict[UUID, int] = {}
        self._by_channel: dict[bytes, UUID] = {}
        self._pubsub: PubSub | None = None
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
        await self._redis.aclose()

    def add(self, user_id: UUID) -> None:
        """A socket of `user_id` opened here: subscribe to the user's channel if it is the first."""
        count = self._users.get(user_id, 0)
        self._users[user_id] = count + 1
        if count == 0:
            channel = user_channel(self._prefix, user_id)
            self._by_channel[channel.encode()] = user_id
            self._command(lambda ps: ps.ssubscribe(channel))

    def remove(self, user_id: UUID) -> None:
        """A socket of `user_id` closed here: unsubscribe when it was the last."""
        count = self._users.get(user_id, 0)
        if count <= 1:
            self._users.pop(user_id, None)
            channel = user_channel(self._prefix, user_id)
            self._by_channel.pop(channel.encode(), None)
            if count == 1:
                self._command(lambda ps: ps.sunsubscribe(channel))
        else:
            self._users[user_id] = count - 1

    def _command(self, send: Callable[[PubSub], Any]) -> None:
        """Send a (un)subscribe on the live connection; while disconnected, the next
        connection subscribes to every current user anyway."""
        pubsub = self._pubsub
        if pubsub is None or not self.is_connected:
            return

        async def run() -> None:
            try:
                await send(pubsub)
            except (RedisError, OSError) as exc:
                log.warning("redis_subscribe_failed", error=str(exc))  # the reader reconnects

        task = asyncio.create_task(run())
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _run(self) -> None:
        failures = 0
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._refill)
                channels = [user_channel(self._prefix, u) for u in self._users]
                if channels:
                    await pubsub.ssubscribe(*channels)
                self._pubsub = pubsub
                self.connects += 1
                self._connected.set()
                failures = 0
                log.info("redis_subscriber_connected", connects=self.connects, users=len(channels))
                # Whatever was published while this replica was not subscribed is lost.
                self._safely(self._on_refill, "reconnect")
                await self._consume(pubsub, initial=set(channels))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.errors += 1
                log.warning("redis_subscriber_disconnected", error=str(exc))
            finally:
                self._connected.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            failures += 1
            await asyncio.sleep(REDIS_RETRY.backoff(failures))

    async def _consume(self, pubsub: PubSub, initial: set[str]) -> None:
        pending_initial = {c.encode() for c in initial}
        while True:
            message = await pubsub.get_message(timeout=HEALTH_SECONDS)
            if message is None:
                await pubsub.ping()  # quiet: prove the connection alive (an error reconnects)
                continue
            kind, channel = message["type"], message["channel"]
            if kind in ("smessage", "message"):
                if channel == self._refill:
                    self.refills += 1
                    self._safely(self._on_refill, "refill")
                elif channel in self._by_channel:
                    self._safely(self._on_notice, message["data"])
            elif kind == "ssubscribe":
                if channel in pending_initial:
                    pending_initial.discard(channel)  # covered by the connection's refill
                elif channel in self._by_channel:
                    self._safely(self._on_subscribed, self._by_channel[channel])

    def _safely(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:  # a handler's bug must not kill the subscription
            log.exception("redis_subscriber_handler_failed")
