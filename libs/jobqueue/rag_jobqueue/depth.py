"""The queue's depth, sampled for operators: what an autoscaler scales on and alerts watch.

A worker knows its own jobs; how many wait in the queue, and for how long, only the table
knows. So each worker reads it every `interval` seconds (one indexed query, `queries.DEPTH`)
and sets the `rag_queue_*` gauges of metrics.py. Every replica reports the same figures, so
a dashboard or an HPA takes the max (or any one); a failing read keeps the last figures and
lets `rag_queue_sampled_timestamp_seconds` age, which an alert can watch.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from rag_jobqueue import metrics
from rag_jobqueue.queries import QueueSQL
from rag_jobqueue.queue import QueueSpec

log = structlog.get_logger("rag_jobqueue.depth")


async def sample_depth(pool: AsyncConnectionPool[Any], queue: QueueSpec, statements: QueueSQL) -> None:
    """Read the queue's figures once and set the gauges."""
    async with pool.connection() as conn:
        cur = await conn.execute(statements.depth)
        row = await cur.fetchone()
    assert row is not None  # an aggregate always returns a row
    due, delayed, oldest_age, running = row
    labels = {"queue": queue.name}
    metrics.QUEUE_DEPTH.labels(**labels).set(due)
    metrics.QUEUE_DELAYED.labels(**labels).set(delayed)
    metrics.QUEUE_OLDEST_AGE.labels(**labels).set(max(0.0, oldest_age))
    metrics.QUEUE_RUNNING.labels(**labels).set(running)
    metrics.QUEUE_SAMPLED.labels(**labels).set(time.time())


async def sample_depth_forever(
    pool: AsyncConnectionPool[Any], queue: QueueSpec, statements: QueueSQL, interval: float
) -> None:
    """`sample_depth` at once, then every `interval` seconds, until cancelled."""
    while True:
        try:
            await sample_depth(pool, queue, statements)
        except (psycopg.Error, OSError) as exc:
            log.warning("queue_depth_failed", queue=queue.name, error=str(exc))
        await asyncio.sleep(interval)
