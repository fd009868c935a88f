"""A job queued from synchronous test code, the way every producer queues one; a claim sent
as a worker sends it.

Tests that set up "what a worker would have left" (a running or finished ingest job) go
through `rag_jobqueue.enqueue` too, so no test spells `INSERT INTO <queue>` by hand and
the columns a job needs stay in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from rag_jobqueue import ClaimEffects, Job, QueueSpec, enqueue
from rag_jobqueue.queries import QueueSQL, claimed


def enqueue_sync(dsn: str, queue: QueueSpec, values: Mapping[str, Any]) -> Job:
    """`enqueue` on a connection of its own, committed (and its NOTIFY sent) on return.

    Only from code that runs no event loop of its own (asyncio.run would refuse).
    """

    async def run() -> Job:
        async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await enqueue(conn, queue, values)

    return asyncio.run(run())


def claim_once(
    dsn: str, queue: QueueSpec, effects: ClaimEffects, limit: int
) -> tuple[list[Job], list[tuple[str, dict[str, Any]]]]:
    """One claim of up to `limit` of `queue`'s jobs, the statement a worker sends (with a
    kind's claim `effects`), and the (type, payload) of every event it published, in order.

    The events are those the log gained: for kinds whose claim SQL must build what the
    kind's Python builders build, a test compares the two on the same job rows.
    """
    logged = "SELECT audience, seq, type, payload FROM audience_events ORDER BY audience, seq"
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = {(a, s) for a, s, _, _ in conn.execute(logged)}
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                QueueSQL(queue, effects).claim,
                {"limit": limit, "worker": "test", "lease": 30},
            )
            jobs, _ = claimed(cur.fetchall())
        events = [(t, p) for a, s, t, p in conn.execute(logged) if (a, s) not in before]
    return jobs, events
