"""The runtime on objects of its own: a job table `test_jobs`, a kind, events for tenants.

The database holds only the bus's migrations and what is below: a job table with the job
columns of docs/jobs.md ("A job table"), the optional `traceparent` (used by `TRACED`), and a
`tenant` partition column with the two fair claim indexes, and the `eventbus_recipients` view the bus needs (each tenant is an
audience of one user), so that the job events the kind returns are published as in
production.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import AsyncConnection, sql

from rag_eventbus.schema import install
from rag_jobqueue import ClaimEffects, Job, QueueSpec, enqueue, public_message

QUEUE = QueueSpec(table="test_jobs", channel="test_jobs", name="test", partition_by="tenant")
FIFO = dataclasses.replace(QUEUE, partition_by=None)
TRACED = dataclasses.replace(QUEUE, traced=True)  # the same table; enqueue stores the trace context

TEST_SCHEMA = """
CREATE TABLE test_jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant       uuid NOT NULL,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'success', 'failed')),
    attempt      integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_by    text,
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    traceparent  text
);
CREATE INDEX test_jobs_queued_idx ON test_jobs (run_at, id) WHERE status = 'queued';
CREATE INDEX test_jobs_lease_idx ON test_jobs (locked_until) WHERE status = 'running';
CREATE INDEX test_jobs_queued_tenant_idx ON test_jobs (tenant, run_at, id) WHERE status = 'queued';
CREATE INDEX test_jobs_running_tenant_idx ON test_jobs (tenant) WHERE status = 'running';

CREATE TABLE test_tenant_users (
    tenant  uuid NOT NULL,
    user_id uuid NOT NULL,
    PRIMARY KEY (tenant, user_id)
);
CREATE VIEW eventbus_recipients AS SELECT tenant AS audience, user_id FROM test_tenant_users;
"""


@pytest.fixture
def jobs_database_url(empty_database_url: str) -> str:
    """An empty database with the bus's migrations, `test_jobs` and the recipients view."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        install(conn, TEST_SCHEMA)
    return empty_database_url


@dataclass(frozen=True, slots=True)
class JobEvent:
    """The `Publishable` the test kind returns for every transition of a job."""

    audience: UUID
    payload: Mapping[str, Any] = field(default_factory=dict)
    type: str = "job.status_updated"


def job_event(job: Job, error: str | None = None) -> JobEvent:
    payload = {"job_id": str(job.id), "status": job.status, "attempt": job.attempt, "error": error}
    return JobEvent(job.row["tenant"], payload)


# `job_event` of every started job, in SQL: what the claim publishes.
CLAIMED_EVENTS = ClaimEffects(
    events=sql.SQL("""
SELECT s.id AS job_id, 1 AS n, jsonb_build_object(
    'type', 'job.status_updated', 'audience', s.tenant,
    'payload', jsonb_build_object('job_id', s.id, 'status', s.status, 'attempt', s.attempt, 'error', NULL)
) AS event FROM started s""")
)


class TestKind:
    """Hooks that publish one job event per transition (`on_failed` with the error)."""

    __test__ = False  # not a test class, whatever its name

    queue = QUEUE
    timeout_seconds: float | None = None
    claim_effects = CLAIMED_EVENTS

    async def on_retry(self, conn: AsyncConnection[Any], job: Job, error: str) -> list[JobEvent]:
        return [job_event(job)]

    async def on_failed(self, conn: AsyncConnection[Any], job: Job, error: str) -> list[JobEvent]:
        return [job_event(job, error)]

    async def on_released(self, conn: AsyncConnection[Any], job: Job) -> list[JobEvent]:
        return [job_event(job)]

    def user_message(self, exc: BaseException) -> str:
        return public_message(exc, {})


async def enqueue_jobs(
    dsn: str,
    n: int,
    *,
    tenant: UUID | None = None,
    queue: QueueSpec = QUEUE,
    run_at: Sequence[datetime] | None = None,
    **values: Any,
) -> list[UUID]:
    """`n` queued jobs of `tenant` (by default a new one, with one user) via `enqueue`,
    committed together; `run_at` gives each job's due time."""
    ids = []
    async with await AsyncConnection.connect(dsn) as conn, conn.transaction():
        if tenant is None:
            tenant = uuid.uuid4()
            await conn.execute("INSERT INTO test_tenant_users VALUES (%s, %s)", (tenant, uuid.uuid4()))
        for i in range(n):
            due = {} if run_at is None else {"run_at": run_at[i]}
            ids.append((await enqueue(conn, queue, {"tenant": tenant, **due, **values})).id)
    return ids
