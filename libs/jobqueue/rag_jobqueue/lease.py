"""A worker's hold on one claimed job, and the fenced updates made under it."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from rag_jobqueue.errors import LeaseLost
from rag_jobqueue.queries import QueueSQL
from rag_jobqueue.queue import Job


class Lease:
    """Given to `JobKind.run`. `finish` completes the job inside the caller's transaction."""

    def __init__(self, job: Job, worker_id: str, statements: QueueSQL) -> None:
        self.job = job
        self.worker_id = worker_id
        self.lost = asyncio.Event()
        self._sql = statements

    def _fence(self) -> dict[str, Any]:
        return {"id": self.job.id, "worker": self.worker_id, "attempt": self.job.attempt}

    async def check(self, conn: AsyncConnection[Any]) -> None:
        """Lock the job row for this transaction; LeaseLost if it is no longer ours."""
        cur = await conn.execute(self._sql.check_fence, self._fence())
        if await cur.fetchone() is None:
            raise LeaseLost(f"job {self.job.id} attempt {self.job.attempt} is no longer ours")

    async def finish(self, conn: AsyncConnection[Any]) -> Job:
        """Mark the job `success` in the caller's transaction; LeaseLost if fenced out.

        The caller's other writes (document status, next job, events) commit with it
        or not at all: a worker that lost its lease changes nothing.
        """
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(self._sql.succeed, self._fence())
            row = await cur.fetchone()
        if row is None:
            raise LeaseLost(f"job {self.job.id} attempt {self.job.attempt} is no longer ours")
        return Job.from_row(row)
