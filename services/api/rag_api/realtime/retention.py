"""Periodic pruning of the event log (EVENT_RETENTION_SECONDS, EVENT_RETENTION_MAX_PER_USER).

Every api replica runs the loop; `pg_try_advisory_xact_lock` lets only one of them
prune at a time (the others skip that round instead of queueing behind it). The lock
is transaction-scoped, so it works through a transaction-mode pooler and is released
even if the replica dies mid-prune. A resume from before what is left gets
`resync_required` (rag_eventbus.EventLog), never a partial replay.

Interval: 10 minutes, with jitter. Retention is measured in days and thousands of
events, so pruning more often buys nothing and each round scans the log.
"""

from __future__ import annotations

from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from rag_api.locks import PRUNE_LOCK_KEY, try_replica_lock
from rag_api.metrics import EVENTS_PRUNED
from rag_api.periodic import run_periodically
from rag_eventbus import EventLog

log = structlog.get_logger("rag_api.realtime.retention")

DEFAULT_RETENTION_INTERVAL = 600.0  # seconds


async def prune_once(pool: AsyncConnectionPool[Any], max_age_seconds: float, max_per_user: int) -> int | None:
    """Prune if no other replica is pruning; the number of events removed, or None if skipped."""
    async with pool.connection() as conn:
        async with conn.transaction():
            if not await try_replica_lock(conn, PRUNE_LOCK_KEY):
                return None
            return await EventLog(conn).prune(max_age_seconds, max_per_user)


async def run_retention(
    pool: AsyncConnectionPool[Any],
    *,
    max_age_seconds: float,
    max_per_user: int,
    interval: float = DEFAULT_RETENTION_INTERVAL,
) -> None:
    """Prune every `interval` seconds (rag_api.periodic) until cancelled."""

    async def prune_round() -> bool:
        removed = await prune_once(pool, max_age_seconds, max_per_user)
        if removed is None:
            log.debug("event_prune_skipped", reason="another replica holds the lock")
            return False
        EVENTS_PRUNED.inc(removed)
        if removed:
            log.info("event_pruned", removed=removed)
        return True

    await run_periodically("event_prune", interval, prune_round)
