"""The hooks the document kinds share: what a user reads when a job fails transiently, and
the document's status through the job's life (run by the real runtime)."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from rag_core.document_jobs import DocumentJobKind, claim_effects, document_event, job_event
from rag_core.events import DocumentStatus, JobType
from rag_core.queues import INGEST_QUEUE, PARSE_QUEUE, queue_document_job
from rag_jobqueue import INTERNAL_ERROR, Job, Lease, QueueSpec, Worker
from rag_jobqueue.settings import JobSettings
from rag_testing.jobs import claim_once, enqueue_sync
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


def insert_documents(dsn: str, workspace: uuid.UUID, n: int) -> list[uuid.UUID]:
    with psycopg.connect(dsn) as conn:
        return [
            conn.execute(
                "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)"
                " VALUES (%s, 'f.txt', 'text/plain', 1, %s) RETURNING id",
                (workspace, f"{i:064x}"),
            ).fetchone()[0]  # type: ignore[index]
            for i in range(n)
        ]


@pytest.mark.parametrize(
    ("queue", "job_type", "working_status"),
    [(PARSE_QUEUE, "parse", "parsing"), (INGEST_QUEUE, "ingest", "ingesting")],
)
def test_the_claims_sql_publishes_what_the_python_builders_build(
    database_url: str, queue: QueueSpec, job_type: JobType, working_status: DocumentStatus
) -> None:
    """The claim builds its events in SQL (claim_effects), every other transition in Python
    (job_event, document_event): for the same job rows both give the same events, byte for
    byte, including run_at with and without microseconds."""
    workspace = make_workspace(database_url, [uuid.uuid4()])
    run_ats = ["2026-01-02 03:04:05+00", "2026-01-02 03:04:05.12+00", "2026-01-02 03:04:05.000005+00"]
    documents = insert_documents(database_url, workspace, len(run_ats))
    for document_id, run_at in zip(documents, run_ats, strict=True):
        enqueue_sync(
            database_url,
            queue,
            {"document_id": document_id, "workspace_id": workspace, "run_at": datetime.fromisoformat(run_at)},
        )
    jobs, published = claim_once(database_url, queue, claim_effects(job_type, working_status), limit=10)
    assert len(jobs) == 3 and all(job.status == "running" and job.attempt == 1 for job in jobs)
    expected = []
    for job in sorted(jobs, key=lambda j: j.id):
        for event in (job_event(job, job_type), document_event(job, working_status)):
            expected.append((event.type, orjson.loads(orjson.dumps(event.payload))))
    assert published == expected
    assert {e[1]["run_at"] for e in published if "run_at" in e[1]} == {
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.120000Z",
        "2026-01-02T03:04:05.000005Z",
    }
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute("SELECT status FROM documents WHERE id = ANY(%s)", (documents,)).fetchall()
    assert statuses == [(working_status,)] * 3


def streams_held(probe: psycopg.Connection[Any], workspace: uuid.UUID, user: uuid.UUID) -> dict[str, bool]:
    """Once a claim waits for a lock: whether it holds the workspace's and the user's stream."""
    for _ in range(500):
        waiting = probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%WITH RECURSIVE firsts%'"
        ).fetchone()
        if waiting == (1,):
            break
        time.sleep(0.01)
    assert waiting == (1,), "the claim never waited for the locked document"
    held = {}
    for table, key, value in (("audience_streams", "audience", workspace), ("user_streams", "user_id", user)):
        with probe.transaction():
            free = probe.execute(
                sql.SQL("SELECT 1 FROM {} WHERE {} = %s FOR UPDATE SKIP LOCKED").format(
                    sql.Identifier(table), sql.Identifier(key)
                ),
                (value,),
            ).fetchall()
        held[table] = free != [(1,)]
    return held


def test_a_claim_locks_the_document_before_the_event_streams(database_url: str) -> None:
    """The claim's one statement takes its locks in the order of the transaction it replaced:
    job, document, then the bus's streams. Otherwise a claim waiting for a document that an
    api transaction holds would hold the streams that transaction publishes to next: a
    deadlock. Here a document is locked; the claim must wait for it with the streams free."""
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    (document_id,) = insert_documents(database_url, workspace, 1)
    enqueue_sync(database_url, PARSE_QUEUE, {"document_id": document_id, "workspace_id": workspace})
    with psycopg.connect(database_url, autocommit=True) as conn:  # the streams' rows exist
        conn.execute(
            "INSERT INTO audience_streams (audience) VALUES (%s) ON CONFLICT DO NOTHING", (workspace,)
        )
        conn.execute("INSERT INTO user_streams (user_id) VALUES (%s) ON CONFLICT DO NOTHING", (user,))
    with psycopg.connect(database_url) as holder, ThreadPoolExecutor(1) as pool:
        holder.execute("SELECT 1 FROM documents WHERE id = %s FOR UPDATE", (document_id,))
        claim = pool.submit(claim_once, database_url, PARSE_QUEUE, claim_effects("parse", "parsing"), 1)
        try:
            with psycopg.connect(database_url, autocommit=True) as probe:
                held = streams_held(probe, workspace, user)
        finally:
            holder.rollback()  # the claim goes on whatever was found
        jobs, published = claim.result(timeout=30)
    assert held == {"audience_streams": False, "user_streams": False}
    assert [job.row["document_id"] for job in jobs] == [document_id]
    assert [t for t, _ in published] == ["job.status_updated", "document.status_updated"]
