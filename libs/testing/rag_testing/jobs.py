"""A job queued from synchronous test code, the way every producer queues one.

Tests that set up "what a worker would have left" (a running or finished ingest job) go
through `rag_jobqueue.enqueue` too, so no test spells `INSERT INTO <queue>` by hand and
the columns a job needs stay in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection

from rag_jobqueue import Job, QueueSpec, enqueue


def enqueue_sync(dsn: str, queue: QueueSpec, values: Mapping[str, Any]) -> Job:
    """`enqueue` on a connection of its own, committed (and its NOTIFY sent) on return.

    Only from code that runs no event loop of its own (asyncio.run would refuse).
    """

    async def run() -> Job:
        async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await enqueue(conn, queue, values)

    return asyncio.run(run())
