"""What a worker does with its jobs: the hooks the runtime calls.

The runtime owns the job row (claim, lease, retry, failure, release); a kind owns
the work and the domain rows around it (the document's status) and says which
events each transition publishes. Every hook that receives a connection runs
inside the runtime's transaction for that transition, so the job's state, the
domain rows and the events commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

import psycopg
from psycopg import AsyncConnection

from rag_jobqueue.errors import PublicMessages, public_message
from rag_jobqueue.lease import Lease
from rag_jobqueue.queue import Job, QueueSpec
from rag_schema.events import DocumentStatus, DocumentStatusUpdated, Event, JobStatusUpdated, JobType

Conn = AsyncConnection[Any]


class JobKind(Protocol):
    queue: QueueSpec
    timeout_seconds: float | None

    async def run(self, job: Job, lease: Lease) -> None:
        """Do the work, then complete with `lease.finish(conn)` in one transaction.

        Raise PermanentJobError for content that can never succeed; any other
        exception is retried with backoff.
        """

    async def on_claimed(self, conn: Conn, jobs: Sequence[Job]) -> list[Event]:
        """Called once per claim with every job it started (one round trip for many jobs)."""

    async def on_retry(self, conn: Conn, job: Job, error: str) -> list[Event]: ...

    async def on_failed(self, conn: Conn, job: Job, error: str) -> list[Event]: ...

    async def on_released(self, conn: Conn, job: Job) -> list[Event]: ...

    def user_message(self, exc: BaseException) -> str:
        """The sentence stored as the job's error for a transient failure: never the
        exception's own text (see `errors.public_message`); the runtime adds the reference."""


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
