"""The product's three job queues: which table, which NOTIFY channel, which name in logs.

The tables are in migration 0001 (parse, ingest) and 0002 (answer); every job enters
one of them through `rag_jobqueue.enqueue`, and `queue_document_job` is that call for
the two queues whose jobs are about one document.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from rag_jobqueue import Job, QueueSpec, enqueue

# Parse and ingest jobs store the trace they were queued in (migration 0008): one upload is
# one trace, from the request through both jobs to the frames (docs/observability.md).
PARSE_QUEUE = QueueSpec(
    table="parse_jobs", channel="parse_jobs", name="parse", partition_by="workspace_id", traced=True
)
INGEST_QUEUE = QueueSpec(
    table="ingest_jobs", channel="ingest_jobs", name="ingest", partition_by="workspace_id", traced=True
)
ANSWER_QUEUE = QueueSpec(
    table="answer_jobs", channel="answer_jobs", name="answer", partition_by="workspace_id"
)


async def queue_document_job(
    conn: AsyncConnection[Any], queue: QueueSpec, document_id: UUID, workspace_id: UUID, max_attempts: int
) -> Job:
    """A queued parse or ingest job for the document; the caller publishes its `job_event`."""
    values = {"document_id": document_id, "workspace_id": workspace_id, "max_attempts": max_attempts}
    return await enqueue(conn, queue, values)
