"""The one way a job enters a queue (graphile-worker's rule): insert the row, ring the channel.

Every producer calls `enqueue` inside its own transaction, so the job, the producer's
other rows and its events commit together; the NOTIFY is delivered at commit and
dropped on rollback. No caller writes `INSERT INTO <queue>` or a channel name by hand.

A traced queue's job also records the trace it was queued in (the current span's
traceparent, none with tracing off), which the worker continues.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from rag_eventbus import notify_job
from rag_jobqueue.queries import insert
from rag_jobqueue.queue import Job, QueueSpec
from rag_observability.tracing import current_traceparent


async def enqueue(conn: AsyncConnection[Any], queue: QueueSpec, values: Mapping[str, Any]) -> Job:
    """Insert one queued job with the given columns (the job columns take their defaults)."""
    if queue.traced and "traceparent" not in values:
        traceparent = current_traceparent()
        if traceparent is not None:
            values = {**values, "traceparent": traceparent}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(insert(queue.table, values), values)
        row = await cur.fetchone()
    assert row is not None
    job = Job.from_row(row)
    await notify_job(conn, queue.channel, job.id)
    return job
