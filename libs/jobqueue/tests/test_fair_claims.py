"""Fair claims across workspaces (rag_jobqueue.queue.fair_claim), against the real Postgres.

The claim statement is run directly where the rule is checked (which jobs a claim takes),
and through a running Worker where the user-visible outcome is checked (how long a
workspace's single job waits behind another workspace's 500).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from rag_core.document_jobs import DocumentJobKind, job_event
from rag_eventbus import publish
from rag_jobqueue import Job, Lease, QueueSpec, Worker
from rag_jobqueue.queue import QueueSQL
from rag_jobqueue.settings import JobSettings

pytestmark = pytest.mark.anyio

PARSE = QueueSpec(table="parse_jobs", channel="parse_jobs", name="parse")
FIFO = QueueSpec(table="parse_jobs", channel="parse_jobs", name="parse", partition_by=None)

INSERT_WORKSPACE = "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)"
# n documents with one queued parse job each, in one statement; run_at spaced 1 ms apart
# from `start` so that their age order is the insertion order.
INSERT_JOBS = """
WITH docs AS (
    INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)
    SELECT %(ws)s, 'f.txt', 'text/plain', 1, encode(sha256((%(ws)s::text || i)::bytea), 'hex')
    FROM generate_series(1, %(n)s) i
    RETURNING id, sha256
)
INSERT INTO parse_jobs (document_id, workspace_id, run_at)
SELECT id, %(ws)s, %(start)s::timestamptz + row_number() OVER (ORDER BY sha256) * interval '1 ms' FROM docs
RETURNING id
"""


class Queues:
    """Workspaces with queued jobs, built with plain SQL."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.clock = datetime.now(UTC) - timedelta(hours=1)  # every job is due

    def workspace(self, jobs: int) -> uuid.UUID:
        """A workspace whose `jobs` queued jobs are all younger than every earlier one's."""
        ws = uuid.uuid4()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(INSERT_WORKSPACE, (ws, uuid.uuid4()))
            conn.execute(INSERT_JOBS, {"ws": ws, "n": jobs, "start": self.clock})
        self.clock += timedelta(milliseconds=jobs + 1)
        return ws

    def set_running(self, ws: uuid.UUID, count: int) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE parse_jobs SET status = 'running', locked_by = 'elsewhere', locked_until = now() + interval '1 hour'"
                " WHERE id IN (SELECT id FROM parse_jobs WHERE workspace_id = %s AND status = 'queued'"
                " ORDER BY run_at LIMIT %s)",
                (ws, count),
            )


@pytest.fixture
def queues(database_url: str) -> Iterator[Queues]:
    yield Queues(database_url)


def claim(conn: psycopg.Connection[Any], limit: int, spec: QueueSpec = PARSE) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QueueSQL(spec).claim, {"limit": limit, "worker": "test", "lease": 30})
        return cur.fetchall()


def claim_now(dsn: str, limit: int, spec: QueueSpec = PARSE) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return claim(conn, limit, spec)


def test_a_single_claim_prefers_the_workspace_with_fewest_running(queues: Queues) -> None:
    busy = queues.workspace(10)  # the oldest jobs
    idle = queues.workspace(1)
    queues.set_running(busy, 2)
    (row,) = claim_now(queues.dsn, 1)
    assert row["workspace_id"] == idle


def test_with_equal_running_the_oldest_job_wins(queues: Queues) -> None:
    older = queues.workspace(3)
    queues.workspace(3)
    (row,) = claim_now(queues.dsn, 1)
    assert row["workspace_id"] == older
    # `older` now runs one job, the other none: the other's oldest goes next.
    (row,) = claim_now(queues.dsn, 1)
    assert row["workspace_id"] != older


def test_a_batch_claim_is_spread_round_robin_over_workspaces(queues: Queues) -> None:
    big = queues.workspace(50)
    small = [queues.workspace(2) for _ in range(3)]
    rows = claim_now(queues.dsn, 6)
    per_ws = {ws: sum(r["workspace_id"] == ws for r in rows) for ws in [big, *small]}
    # Rank 1 of each of the four, then the two oldest rank-2 jobs (nobody ran anything before).
    assert sorted(per_ws.values()) == [1, 1, 2, 2]
    assert per_ws[big] == 2


def test_within_a_workspace_jobs_are_claimed_oldest_first(queues: Queues, database_url: str) -> None:
    queues.workspace(5)
    with psycopg.connect(database_url) as conn:
        expected = [r[0] for r in conn.execute("SELECT id FROM parse_jobs ORDER BY run_at, id")]
    got = [claim_now(database_url, 1)[0]["id"] for _ in range(5)]
    assert got == expected
    assert claim_now(database_url, 1) == []


def test_jobs_not_yet_due_are_not_claimed(queues: Queues, database_url: str) -> None:
    ws = queues.workspace(2)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE parse_jobs SET run_at = now() + interval '1 hour' WHERE workspace_id = %s", (ws,)
        )
    assert claim_now(database_url, 5) == []
    later = queues.workspace(1)
    assert [r["workspace_id"] for r in claim_now(database_url, 5)] == [later]


def test_concurrent_claims_skip_each_others_rows_and_never_share_one(
    queues: Queues, database_url: str
) -> None:
    queues.workspace(6)  # one workspace: every claim wants the same head
    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        held = claim(first, 2)  # first's transaction is still open: its rows are locked
        taken = claim(second, 2)
        second.commit()
        first.commit()
    assert len(held) == 2 and len(taken) == 2
    assert not {r["id"] for r in held} & {r["id"] for r in taken}


def test_partition_by_none_is_plain_fifo(queues: Queues) -> None:
    first = queues.workspace(3)
    queues.workspace(3)
    rows = claim_now(queues.dsn, 3, FIFO)
    assert [r["workspace_id"] for r in rows] == [first, first, first]


class RecordingKind(DocumentJobKind):
    queue = PARSE
    job_type = "parse"
    working_status = "parsing"

    def __init__(self, pool: AsyncConnectionPool[Any], watched: uuid.UUID) -> None:
        self.pool = pool
        self.started: list[uuid.UUID] = []  # the workspace of each job, in start order
        self.watched = watched
        self.watched_started = asyncio.Event()

    async def run(self, job: Job, lease: Lease) -> None:
        self.started.append(job.row["workspace_id"])
        if job.row["workspace_id"] == self.watched:
            self.watched_started.set()
        await asyncio.sleep(0.01)
        async with self.pool.connection() as conn, conn.transaction():
            done = await lease.finish(conn)
            await publish(conn, [job_event(done, "parse")])


async def test_one_job_of_another_workspace_waits_for_a_few_claims_not_for_500(
    queues: Queues, database_url: str
) -> None:
    heavy = queues.workspace(500)
    single = queues.workspace(1)  # queued after all 500
    settings = JobSettings(worker_concurrency=2, worker_idle_sleep_seconds=0.2, job_lease_seconds=30)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:
        kind = RecordingKind(pool, watched=single)
        worker = Worker(kind, pool, database_url, settings)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(kind.watched_started.wait(), 30)
        stop.set()
        await asyncio.wait_for(task, 30)
    assert single in kind.started, "the single job never started"
    position = kind.started.index(single) + 1
    assert position <= 3, f"claimed {position}th, after {position - 1} of the heavy workspace's jobs"
    assert kind.started[:position].count(heavy) == position - 1
