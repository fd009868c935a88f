"""What the parse and ingest kinds share: a job about one document.

Each transition of such a job publishes `job.status_updated` and moves the document's
status (docs/contract.md §5): claimed -> `parsing`/`ingesting`, failed -> `error`. The
job runtime (rag_jobqueue) calls these hooks inside its transaction for the transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import psycopg
from psycopg import AsyncConnection

from rag_core.events import DocumentStatus, DocumentStatusUpdated, Event, JobStatusUpdated, JobType
from rag_jobqueue import Job, PublicMessages, QueueSpec, public_message

Conn = AsyncConnection[Any]


UPDATE_DOCUMENT_STATUS = """
UPDATE documents SET status = %(status)s, error = %(error)s, updated_at = now() WHERE id = %(id)s
"""
UPDATE_DOCUMENTS_STATUS = """
UPDATE documents SET status = %(status)s, error = NULL, updated_at = now() WHERE id = ANY(%(ids)s)
"""


def job_event(
    job: Job, job_type: JobType, *, error: str | None = None, progress: dict[str, int] | None = None
) -> Event:
    """job.status_updated for the job's current row (status, attempt, run_at).

    `error` is the row's last error for `queued` and `failed`; a `running` or
    `success` event carries none (a new attempt starts clean).
    """
    if error is None and job.status in ("queued", "failed"):
        error = job.last_error
    run_at: datetime | None = job.run_at
    return Event.of(
        JobStatusUpdated.model_validate(
            {
                "job_id": job.id,
                "job_type": job_type,
                "document_id": job.row["document_id"],
                "workspace_id": job.row["workspace_id"],
                "status": job.status,
                "attempt": job.attempt,
                "max_attempts": job.max_attempts,
                "error": error,
                "run_at": run_at,
                "progress": progress,
            }
        )
    )


async def set_document_status(
    conn: Conn, job: Job, status: DocumentStatus, error: str | None = None
) -> Event:
    await conn.execute(
        UPDATE_DOCUMENT_STATUS, {"status": status, "error": error, "id": job.row["document_id"]}
    )
    return document_event(job, status, error)


def document_event(job: Job, status: DocumentStatus, error: str | None = None) -> Event:
    """document.status_updated for the job's document."""
    return Event.of(
        DocumentStatusUpdated(
            workspace_id=job.row["workspace_id"],
            document_id=job.row["document_id"],
            status=status,
            error=error,
        )
    )


class DocumentJobKind:
    """Shared hooks of the parse and ingest kinds: job events plus the document's status."""

    queue: QueueSpec
    job_type: ClassVar[JobType]
    working_status: ClassVar[DocumentStatus]  # "parsing" / "ingesting"
    timeout_seconds: float | None = None
    # Exception types a transient failure may raise -> what the user reads; extended per kind.
    public_errors: ClassVar[PublicMessages] = {
        psycopg.OperationalError: "The database could not be reached.",
    }

    async def on_claimed(self, conn: Conn, jobs: Sequence[Job]) -> list[Event]:
        await conn.execute(
            UPDATE_DOCUMENTS_STATUS,
            {"status": self.working_status, "ids": [j.row["document_id"] for j in jobs]},
        )
        events: list[Event] = []
        for job in jobs:
            events += [job_event(job, self.job_type), document_event(job, self.working_status)]
        return events

    async def on_retry(self, conn: Conn, job: Job, error: str) -> list[Event]:
        return [job_event(job, self.job_type)]

    async def on_failed(self, conn: Conn, job: Job, error: str) -> list[Event]:
        return [job_event(job, self.job_type), await set_document_status(conn, job, "error", error)]

    async def on_released(self, conn: Conn, job: Job) -> list[Event]:
        return [job_event(job, self.job_type)]

    def user_message(self, exc: BaseException) -> str:
        return public_message(exc, self.public_errors)
