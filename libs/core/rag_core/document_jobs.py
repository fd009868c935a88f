"""What the parse and ingest kinds share: a job about one document.

Each transition of such a job publishes `job.status_updated` and moves the document's
status (docs/contract.md §5): claimed -> `parsing`/`ingesting`, failed -> `error`. The
job runtime (rag_jobqueue) calls these hooks inside its transaction for the transition;
the claim's are SQL (`claim_effects`) that the claim's own statement runs, and build the
same events as `job_event` and `document_event` (tests/test_document_jobs.py compares them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import psycopg
from psycopg import AsyncConnection, sql

from rag_core.events import DocumentStatus, DocumentStatusUpdated, Event, JobStatusUpdated, JobType
from rag_jobqueue import ClaimEffects, Job, PublicMessages, QueueSpec, public_message

Conn = AsyncConnection[Any]


UPDATE_DOCUMENT_STATUS = """
UPDATE documents SET status = %(status)s, error = %(error)s, updated_at = now() WHERE id = %(id)s
"""

# The claim's effects (rag_jobqueue.effects), over `started`: the documents of the started
# jobs move to the working status, and each job publishes `job_event` then `document_event`.
CLAIMED_DOCUMENTS = """
UPDATE documents d SET status = {status}, error = NULL, updated_at = now()
FROM started s WHERE d.id = s.document_id
"""
CLAIMED_EVENTS = """
SELECT s.id AS job_id, e.n, jsonb_build_object('type', e.type, 'audience', s.workspace_id, 'payload', e.payload) AS event
FROM started s CROSS JOIN LATERAL (VALUES
    (1, 'job.status_updated', jsonb_build_object(
        'job_id', s.id, 'job_type', {job_type}, 'document_id', s.document_id,
        'workspace_id', s.workspace_id, 'status', s.status, 'attempt', s.attempt,
        'max_attempts', s.max_attempts, 'error', NULL, 'run_at', {run_at})),
    (2, 'document.status_updated', jsonb_build_object(
        'workspace_id', s.workspace_id, 'document_id', s.document_id, 'status', {status}, 'error', NULL))
) AS e(n, type, payload)
"""
# A timestamp as pydantic writes it in JSON: UTC with a `Z`, microseconds only when not 0.
JSON_TIMESTAMP = """(to_char({ts} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN mod(date_part('microseconds', {ts})::bigint, 1000000) = 0 THEN ''
       ELSE to_char({ts} AT TIME ZONE 'UTC', '.US') END || 'Z')"""


def claim_effects(job_type: JobType, working_status: DocumentStatus) -> ClaimEffects:
    """The claim's effects of a document job of `job_type` (see CLAIMED_EVENTS)."""
    status, run_at = sql.Literal(working_status), sql.SQL(JSON_TIMESTAMP).format(ts=sql.SQL("s.run_at"))
    return ClaimEffects(
        update=sql.SQL(CLAIMED_DOCUMENTS).format(status=status),
        events=sql.SQL(CLAIMED_EVENTS).format(job_type=sql.Literal(job_type), run_at=run_at, status=status),
    )


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

    @property
    def claim_effects(self) -> ClaimEffects:
        return claim_effects(self.job_type, self.working_status)

    async def on_retry(self, conn: Conn, job: Job, error: str) -> list[Event]:
        return [job_event(job, self.job_type)]

    async def on_failed(self, conn: Conn, job: Job, error: str) -> list[Event]:
        return [job_event(job, self.job_type), await set_document_status(conn, job, "error", error)]

    async def on_released(self, conn: Conn, job: Job) -> list[Event]:
        return [job_event(job, self.job_type)]

    def user_message(self, exc: BaseException) -> str:
        return public_message(exc, self.public_errors)
