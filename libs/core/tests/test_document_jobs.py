"""The hooks the document kinds share: what a user reads when a job fails transiently, and
the document's status through the job's life (run by the real runtime)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from rag_core.document_jobs import DocumentJobKind
from rag_core.queues import PARSE_QUEUE, queue_document_job
from rag_jobqueue import INTERNAL_ERROR, Job, Lease, Worker
from rag_jobqueue.settings import JobSettings
from rag_testing.seed import make_workspace


def test_document_kinds_map_database_outages_and_nothing_else_by_default() -> None:
    kind = DocumentJobKind()
    assert kind.user_message(psycopg.OperationalError("connection to server at 10.1.2.3 failed")) == (
        "The database could not be reached."
    )
    assert kind.user_message(RuntimeError("Traceback ... token=abc")) == INTERNAL_ERROR


class FailingParse(DocumentJobKind):
    """A parse kind whose every run fails transiently."""

    queue = PARSE_QUEUE
    job_type = "parse"
    working_status = "parsing"

    async def run(self, job: Job, lease: Lease) -> None:
        raise ConnectionError("storage unreachable")


@pytest.mark.anyio
async def test_a_claimed_job_marks_its_document_working_and_a_failed_one_marks_it_error(
    database_url: str,
) -> None:
    """The hooks through the real runtime: `parsing` at the claim, `error` with the job's error."""
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with await AsyncConnection.connect(database_url) as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)"
            " VALUES (%s, 'f.txt', 'text/plain', 1, %s) RETURNING id",
            (workspace, "0" * 64),
        )
        (document_id,) = await cur.fetchone() or (None,)
        job = await queue_document_job(conn, PARSE_QUEUE, document_id, workspace, 1)
    settings = JobSettings(worker_idle_sleep_seconds=0.1, job_max_attempts=1)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(FailingParse(), pool, database_url, settings).run(stop))
        for _ in range(500):
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT status, error FROM documents WHERE id = %s", (document_id,)
                ).fetchone()
            if row is not None and row[0] == "error":
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 30)
    assert row == ("error", f"{INTERNAL_ERROR} (gave up after 1 attempts; ref job {job.id})")
    with psycopg.connect(database_url) as conn:
        statuses = [
            r[0]
            for r in conn.execute(
                "SELECT payload->>'status' FROM events WHERE type = 'document.status_updated' ORDER BY id"
            )
        ]
    assert statuses == ["parsing", "error"]
