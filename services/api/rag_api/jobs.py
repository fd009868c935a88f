"""Queueing a parse job: the row, its `job.status_updated` event, the worker's doorbell."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from rag_schema.events import JobStatusUpdated

PARSE_CHANNEL = "parse_jobs"

INSERT_PARSE_JOB = """
INSERT INTO parse_jobs (document_id, workspace_id, max_attempts) VALUES (%s, %s, %s)
RETURNING id, run_at
"""


async def queue_parse_job(
    conn: AsyncConnection[Any], document_id: UUID, workspace_id: UUID, max_attempts: int
) -> tuple[UUID, JobStatusUpdated]:
    """Insert a queued parse job; return its id and the event the caller publishes.

    The caller publishes (once, late) and rings `parse_jobs` in the same transaction.
    """
    cur = await conn.execute(INSERT_PARSE_JOB, (document_id, workspace_id, max_attempts))
    row = await cur.fetchone()
    assert row is not None
    job_id, run_at = row
    event = JobStatusUpdated(
        job_id=job_id,
        job_type="parse",
        document_id=document_id,
        workspace_id=workspace_id,
        status="queued",
        attempt=0,
        max_attempts=max_attempts,
        error=None,
        run_at=run_at,
    )
    return job_id, event
