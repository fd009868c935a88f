"""Fair claims across tenants (rag_jobqueue.queries.FAIR_CLAIM), against the real Postgres.

The claim statement is run directly where the rule is checked (which jobs a claim takes),
and through a running Worker where the user-visible outcome is checked (how long a
tenant's single job waits behind another tenant's 500).
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

from rag_eventbus import publish
from rag_jobqueue import Job, Lease, Worker
from rag_jobqueue.queries import QueueSQL, claimed
from rag_jobqueue.queue import QueueSpec
from rag_jobqueue.settings import JobSettings

from .conftest import FIFO, QUEUE, TestKind, enqueue_jobs, job_event

pytestmark = pytest.mark.anyio


class Queues:
    """Tenants with queued jobs, entered through `enqueue`."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.clock = datetime.now(UTC) - timedelta(hours=1)  # every job is due

    async def tenant(self, jobs: int) -> uuid.UUID:
        """A tenant whose `jobs` queued jobs are all younger than every earlier one's
        (run_at spaced 1 ms apart, so that their age order is the insertion order)."""
        tenant = uuid.uuid4()
        due = [self.clock + timedelta(milliseconds=i + 1) for i in range(jobs)]
        await enqueue_jobs(self.dsn, jobs, tenant=tenant, run_at=due)
        self.clock += timedelta(milliseconds=jobs + 1)
        return tenant

    def set_running(self, tenant: uuid.UUID, count: int) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE test_jobs SET status = 'running', locked_by = 'elsewhere', locked_until = now() + interval '1 hour'"
                " WHERE id IN (SELECT id FROM test_jobs WHERE tenant = %s AND status = 'queued'"
                " ORDER BY run_at LIMIT %s)",
                (tenant, count),
            )


@pytest.fixture
def queues(jobs_database_url: str) -> Iterator[Queues]:
    yield Queues(jobs_database_url)


def claim(conn: psycopg.Connection[Any], limit: int, spec: QueueSpec = QUEUE) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QueueSQL(spec).claim, {"limit": limit, "worker": "test", "lease": 30})
        return [job.row for job in claimed(cur.fetchall())[0]]


def claim_now(dsn: str, limit: int, spec: QueueSpec = QUEUE) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return claim(conn, limit, spec)


async def test_a_single_claim_prefers_the_tenant_with_fewest_running(queues: Queues) -> None:
    busy = await queues.tenant(10)  # the oldest jobs
    idle = await queues.tenant(1)
    queues.set_running(busy, 2)
    (row,) = claim_now(queues.dsn, 1)
    assert row["tenant"] == idle


async def test_with_equal_running_the_oldest_job_wins(queues: Queues) -> None:
    older = await queues.tenant(3)
    await queues.tenant(3)
    (row,) = claim_now(queues.dsn, 1)
    assert row["tenant"] == older
    # `older` now runs one job, the other none: the other's oldest goes next.
    (row,) = claim_now(queues.dsn, 1)
    assert row["tenant"] != older


async def test_a_batch_claim_is_spread_round_robin_over_tenants(queues: Queues) -> None:
    big = await queues.tenant(50)
    small = [await queues.tenant(2) for _ in range(3)]
    rows = claim_now(queues.dsn, 6)
    per_tenant = {tenant: sum(r["tenant"] == tenant for r in rows) for tenant in [big, *small]}
    # Rank 1 of each of the four, then the two oldest rank-2 jobs (nobody ran anything before).
    assert sorted(per_tenant.values()) == [1, 1, 2, 2]
    assert per_tenant[big] == 2


async def test_within_a_tenant_jobs_are_claimed_oldest_first(queues: Queues, jobs_database_url: str) -> None:
    await queues.tenant(5)
    with psycopg.connect(jobs_database_url) as conn:
        expected = [r[0] for r in conn.execute("SELECT id FROM test_jobs ORDER BY run_at, id")]
    got = [claim_now(jobs_database_url, 1)[0]["id"] for _ in range(5)]
    assert got == expected
    assert claim_now(jobs_database_url, 1) == []


async def test_jobs_not_yet_due_are_not_claimed(queues: Queues, jobs_database_url: str) -> None:
    late = await queues.tenant(2)
    with psycopg.connect(jobs_database_url, autocommit=True) as conn:
        conn.execute("UPDATE test_jobs SET run_at = now() + interval '1 hour' WHERE tenant = %s", (late,))
    assert claim_now(jobs_database_url, 5) == []
    later = await queues.tenant(1)
    assert [r["tenant"] for r in claim_now(jobs_database_url, 5)] == [later]


async def test_concurrent_claims_skip_each_others_rows_and_never_share_one(
    queues: Queues, jobs_database_url: str
) -> None:
    await queues.tenant(6)  # one tenant: every claim wants the same head
    with psycopg.connect(jobs_database_url) as first, psycopg.connect(jobs_database_url) as second:
        held = claim(first, 2)  # first's transaction is still open: its rows are locked
        taken = claim(second, 2)
        second.commit()
        first.commit()
    assert len(held) == 2 and len(taken) == 2
    assert not {r["id"] for r in held} & {r["id"] for r in taken}


async def test_partition_by_none_is_plain_fifo(queues: Queues) -> None:
    first = await queues.tenant(3)
    await queues.tenant(3)
    rows = claim_now(queues.dsn, 3, FIFO)
    assert [r["tenant"] for r in rows] == [first, first, first]


class RecordingKind(TestKind):
    def __init__(self, pool: AsyncConnectionPool[Any], watched: uuid.UUID) -> None:
        self.pool = pool
        self.started: list[uuid.UUID] = []  # the tenant of each job, in start order
        self.watched = watched
        self.watched_started = asyncio.Event()

    async def run(self, job: Job, lease: Lease) -> None:
        self.started.append(job.row["tenant"])
        if job.row["tenant"] == self.watched:
            self.watched_started.set()
        await asyncio.sleep(0.01)
        async with self.pool.connection() as conn, conn.transaction():
            done = await lease.finish(conn)
            await publish(conn, [job_event(done)])


async def test_one_job_of_another_tenant_waits_for_a_few_claims_not_for_500(
    queues: Queues, jobs_database_url: str
) -> None:
    heavy = await queues.tenant(500)
    single = await queues.tenant(1)  # queued after all 500
    settings = JobSettings(worker_concurrency=2, worker_idle_sleep_seconds=0.2, job_lease_seconds=30)
    async with AsyncConnectionPool(jobs_database_url, min_size=1, max_size=4, open=False) as pool:
        kind = RecordingKind(pool, watched=single)
        worker = Worker(kind, pool, jobs_database_url, settings)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(kind.watched_started.wait(), 30)
        stop.set()
        await asyncio.wait_for(task, 30)
    assert single in kind.started, "the single job never started"
    position = kind.started.index(single) + 1
    assert position <= 3, f"claimed {position}th, after {position - 1} of the heavy tenant's jobs"
    assert kind.started[:position].count(heavy) == position - 1
