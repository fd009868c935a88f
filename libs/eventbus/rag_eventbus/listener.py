"""One dedicated LISTEN connection that survives restarts of the database.

LISTEN is session state, so the connection is never taken from a pool (and must be
session-mode: `EVENTBUS_DATABASE_URL` when the pool goes through pgbouncer). While
`notifies()` iterates it holds the connection, so nothing else runs on it; handlers
are plain functions that must not block: they set an event or fill a queue.

After every (re)connection `on_reconnect` runs: whatever was notified while the
connection was down is lost, and the owner re-reads it from Postgres (workers poll,
the api replays each socket's gap from the event log).

`exclusive` (an advisory lock key) makes one listener among several listen: each waits,
connected, until its session holds the lock, then LISTENs. The lock is the session's, so it
goes when that connection does, and a waiting one takes over (the Redis relay's failover).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection, sql

from rag_retry import RetryPolicy

log = structlog.get_logger("rag_eventbus.listener")

Handler = Callable[[str], None]
ReconnectHook = Callable[[], Awaitable[None] | None]

# A dead peer is noticed by TCP keepalives and by the periodic health query.
KEEPALIVE_PARAMS: Mapping[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "connect_timeout": 10,
}


class ListenerState(enum.Enum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    STANDBY = "standby"  # connected, waiting for the `exclusive` lock
    CONNECTED = "connected"


TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"


class Listener:
    """LISTEN on `handlers`' channels; reconnect with rag_retry's backoff (exponential,
    from `backoff_initial` up to `backoff_max`, with jitter)."""

    def __init__(
        self,
        dsn: str,
        handlers: Mapping[str, Handler],
        *,
        on_reconnect: ReconnectHook | None = None,
        health_interval: float = 15.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        name: str = "listener",
        exclusive: int | None = None,
        standby_interval: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._exclusive = exclusive
        self._standby_interval = standby_interval
        self._handlers = dict(handlers)
        self._on_reconnect = on_reconnect
        self._health_interval = health_interval
        self._backoff = RetryPolicy(base_seconds=backoff_initial, max_seconds=backoff_max)
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.state = ListenerState.STOPPED
        self.connects = 0  # successful connections, the first included
        self.notifications = 0

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    @property
    def is_connected(self) -> bool:
        return self.state is ListenerState.CONNECTED

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self._name}-loop")

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.state = ListenerState.STOPPED
        self._connected.clear()

    async def __aenter__(self) -> Listener:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        failures = 0
        while True:
            self.state = ListenerState.CONNECTING
            try:
                async with await AsyncConnection.connect(
                    self._dsn, autocommit=True, **KEEPALIVE_PARAMS
                ) as conn:
                    if self._exclusive is not None:
                        await self._wait_for_lock(conn, self._exclusive)
                    for channel in self._handlers:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.state = ListenerState.CONNECTED
                    self.connects += 1
                    self._connected.set()
                    failures = 0
                    log.info("listener_connected", listener=self._name, connects=self.connects)
                    await self._after_connect()
                    await self._consume(conn)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                log.warning("listener_disconnected", listener=self._name, error=str(exc))
            self._connected.clear()
            self.state = ListenerState.CONNECTING
            failures += 1
            await asyncio.sleep(self._backoff.backoff(failures))

    async def _wait_for_lock(self, conn: AsyncConnection[Any], key: int) -> None:
        """Return once this session holds advisory lock `key`; each try proves the connection alive."""
        self.state = ListenerState.STANDBY
        while True:
            cur = await conn.execute(TRY_LOCK, (key,))
            row = await cur.fetchone()
            if row is not None and row[0]:
                log.info("listener_lock_acquired", listener=self._name)
                return
            await asyncio.sleep(self._standby_interval)

    async def _after_connect(self) -> None:
        if self._on_reconnect is None:
            return
        try:
            result = self._on_reconnect()
            if result is not None:
                await result
        except Exception:  # a hook's bug must not kill the listener
            log.exception("listener_on_reconnect_failed", listener=self._name)

    async def _consume(self, conn: AsyncConnection[Any]) -> None:
        while True:
            async for notify in conn.notifies(timeout=self._health_interval):
                self.notifications += 1
                handler = self._handlers.get(notify.channel)
                if handler is None:
                    continue
                try:
                    handler(notify.payload)
                except Exception:
                    log.exception("listener_handler_failed", channel=notify.channel)
            # Quiet for a while: prove the connection is alive.
            await conn.execute("SELECT 1")
