"""The realtime hub of one api process: one broker connection, many WebSockets.

- The broker (`brokers.py`, EVENTBUS_BROKER) brings the `rag_realtime` notices: a dedicated
  LISTEN on `listen_dsn` (EVENTBUS_DATABASE_URL when the pool goes through a
  transaction-mode pooler), where every replica receives every notice and drops those of
  users it does not hold; or the Redis channels of the users this replica holds. The
  handler only decodes the notice and hands each event to the connections of its user on
  this process (`Connection.offer` / `announce`: synchronous, no I/O).
- Everything that needs the database (range notices, gaps, resumes) is read by each
  connection's writer on a pool connection, never on the listener's.
- After every (re)connection of the listener, notifications sent meanwhile are lost,
  and the database may be another server now (a failover): every connection holds its
  events, one query finds the stream position and epoch of every local user, and each
  connection that is behind reads its gap from the log, or resyncs if its stream's epoch
  changed. A Redis broker's refills (its relay changed, Redis came back) run the same
  catch-up without the hold. The same check runs every `reconcile_seconds`
  as a safety net, so that a lost notification costs latency, never an event.
- Retention (`retention.py`) prunes the log periodically, one replica at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

import structlog
from psycopg_pool import AsyncConnectionPool

from rag_api.metrics import LISTENER_CONNECTED, LISTENER_RECONNECTS, REALTIME_CATCH_UPS
from rag_api.realtime import frames
from rag_api.realtime.brokers import Broker, PostgresBroker, broker_for
from rag_api.realtime.connection import Connection
from rag_api.realtime.retention import DEFAULT_RETENTION_INTERVAL, run_retention
from rag_api.realtime.transport import Transport
from rag_api.settings import ApiSettings
from rag_core.tokens import TokenClaims, verify_token
from rag_eventbus import EventLog, Listener, decode_notice
from rag_eventbus.redis_subscriber import RefillCause

log = structlog.get_logger("rag_api.realtime")

DEFAULT_HEARTBEAT_SECONDS = 25.0  # below the usual 60 s idle timeout of proxies and LBs
SSE_KEEPALIVE_SECONDS = 15.0  # the SSE comment: proxies buffer or cut quiet responses sooner
DEFAULT_RECONCILE_SECONDS = 30.0
START_TIMEOUT = 10.0  # seconds `start` waits for the listener before returning anyway
STOP_TIMEOUT = 3.0  # seconds `stop` gives open connections to close


class RealtimeHub:
    """Fan-out of `rag_realtime` notifications to this process's WebSockets."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        listen_dsn: str,
        settings: ApiSettings,
        *,
        heartbeat_seconds: float | None = None,
        sse_keepalive_seconds: float = SSE_KEEPALIVE_SECONDS,
        reconcile_seconds: float | None = DEFAULT_RECONCILE_SECONDS,
        retention_interval_seconds: float | None = DEFAULT_RETENTION_INTERVAL,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.heartbeat_seconds: float | None = (
            heartbeat_seconds if heartbeat_seconds is not None else DEFAULT_HEARTBEAT_SECONDS
        )
        if self.heartbeat_seconds is not None and self.heartbeat_seconds <= 0:
            self.heartbeat_seconds = None  # 0 disables the dead-socket rule
        self.sse_keepalive_seconds = sse_keepalive_seconds
        self._reconcile_seconds = reconcile_seconds
        self._retention_interval = retention_interval_seconds
        self.broker: Broker = broker_for(settings, listen_dsn, self)
        self._by_user: dict[UUID, set[Connection]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    # -- lifecycle --------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while the broker's connection is up (/readyz)."""
        return self._started and self.broker.connected

    @property
    def listener(self) -> Listener:
        """The Postgres broker's LISTEN connection (tests stop and start it)."""
        if not isinstance(self.broker, PostgresBroker):
            raise AttributeError("the Redis broker has no realtime listener of its own")
        return self.broker.listener

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self._by_user.values())

    async def start(self) -> None:
        """Start listening; wait (bounded) for the first connection of the listener."""
        if self._started:
            return
        self._started = True
        LISTENER_CONNECTED.set_function(lambda: 1.0 if self.ready else 0.0)
        LISTENER_RECONNECTS.set_function(lambda: float(self.broker.reconnects))
        self.broker.export_metrics()
        self.broker.start()
        if self._reconcile_seconds:
            self._spawn(self._reconcile_loop(self._reconcile_seconds))
        if self._retention_interval:
            self._spawn(
                run_retention(
                    self.pool,
                    max_age_seconds=self.settings.event_retention_seconds,
                    max_per_user=self.settings.event_retention_max_per_user,
                    interval=self._retention_interval,
                )
            )
        try:
            await self.broker.wait_connected(START_TIMEOUT)
        except TimeoutError:
            # Not fatal: the listener keeps retrying and /readyz answers 503 meanwhile.
            log.warning("realtime_listener_not_connected_yet", timeout=START_TIMEOUT)

    async def close_connections(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close every open connection with 1001 (clients reconnect, to another replica).

        Call it when shutdown begins (e.g. from the server's shutdown trigger): hypercorn
        otherwise waits its whole graceful timeout for WebSockets that never end by
        themselves. `stop` calls it too.
        """
        conns = [c for conns in self._by_user.values() for c in conns]
        for conn in conns:
            conn.request_close(frames.CLOSE_GOING_AWAY, "server shutting down")
        if conns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.finished.wait() for c in conns)), timeout)

    async def stop(self) -> None:
        """Close every connection with 1001, stop the listener and the background tasks."""
        await self.close_connections()
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.broker.stop()
        self._started = False

    # -- connections ------------------------------------------------------------------

    def connection(self, transport: Transport, claims: TokenClaims) -> Connection:
        """A new connection for the token's user; `serve` registers it before reading anything."""
        return Connection(
            transport,
            claims,
            verify=self._verify,
            pool=self.pool,
            queue_max=self.settings.ws_send_queue_max,
            heartbeat_seconds=self.heartbeat_seconds
            if transport.client_frames
            else self.sse_keepalive_seconds,
            register=self._register,
            unregister=self._unregister,
        )

    def _verify(self, token: str) -> TokenClaims:
        """A token sent in an `auth` frame, checked as at the handshake."""
        return verify_token(token, self.settings.jwt_secret, self.settings.jwt_audience)

    def _register(self, conn: Connection) -> bool:
        """Add `conn` to its user's set; False (not added) when the user already holds
        WS_MAX_CONNECTIONS_PER_USER connections here (WebSockets and SSE streams together). Synchronous, so the count and the add
        cannot be split by another connection of the same user."""
        conns = self._by_user.setdefault(conn.user_id, set())
        if len(conns) >= self.settings.ws_max_connections_per_user:
            return False
        conns.add(conn)
        conn.transport.open_gauge.inc()
        self.broker.add_user(conn.user_id)
        return True

    def _unregister(self, conn: Connection) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self._by_user[conn.user_id]
        conn.transport.open_gauge.dec()
        self.broker.remove_user(conn.user_id)

    # -- notifications ----------------------------------------------------------------

    def on_notice(self, payload: str | bytes) -> None:
        """The broker's handler: decode and hand over; never awaits, never blocks."""
        try:
            # Only the users with a socket here are decoded; the rest is dropped unread.
            notice = decode_notice(payload, wanted=self._by_user.__contains__)
        except Exception:
            log.exception("realtime_bad_notice", size=len(payload))
            return
        by_user = self._by_user
        for user_id, event in notice.events:
            conns = by_user.get(user_id)
            if conns:
                for conn in tuple(conns):  # offer may close (and unregister) a slow one
                    conn.offer(event)
        for user_id, _first, last in notice.ranges:
            conns = by_user.get(user_id)
            if conns:
                for conn in tuple(conns):
                    conn.announce(last)

    def on_lost(self, cause: RefillCause, *, hold: bool) -> None:
        """Notices may have been lost (the listener reconnected, a Redis refill): re-read the gaps.

        With `hold` (the listener may have reached another server, a promoted replica)
        every connection holds its events until the catch-up compared its epoch with the
        stream's. Runs before the broker hands over any later notice."""
        log.info("realtime_notices_may_be_lost", broker=self.broker.name, reconnects=self.broker.reconnects)
        REALTIME_CATCH_UPS.labels(cause=cause).inc()
        if self._by_user:
            if hold:
                for conns in self._by_user.values():
                    for c in conns:
                        c.hold()
            self._spawn(self.catch_up_all())

    def on_user_subscribed(self, user_id: UUID) -> None:
        """The broker now brings `user_id`'s notices here: what came before, read from the log."""
        for c in tuple(self._by_user.get(user_id, ())):
            c.catch_up(None)

    async def catch_up_all(self) -> None:
        """Every local connection reads what it lacks up to its user's stream position (or
        resyncs when the stream's epoch is not the one it delivered from)."""
        users = list(self._by_user)
        if not users:
            return
        try:
            async with self.pool.connection() as conn:
                positions = await EventLog(conn).stream_positions(users)
        except Exception as exc:
            # Position unknown: each connection reads the log to its end (retrying).
            log.warning("realtime_catch_up_failed", error=str(exc))
            for conns in list(self._by_user.values()):
                for c in tuple(conns):
                    c.catch_up(None)
            return
        for user_id in users:
            # No stream row (the stream was deleted): read the log, which re-creates it
            # under a new epoch.
            position = positions.get(user_id)
            for c in tuple(self._by_user.get(user_id, ())):
                c.catch_up(position)

    async def _reconcile_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            if self.broker.connected:
                try:
                    await self.catch_up_all()
                except Exception:
                    log.exception("realtime_reconcile_failed")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
