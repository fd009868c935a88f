"""The job runtime against the real Postgres, with a test JobKind on parse_jobs."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rag_core.document_jobs import DocumentJobKind, job_event
from rag_eventbus import publish
from rag_jobqueue import INTERNAL_ERROR, Job, Lease, PermanentJobError, QueueSpec, Worker
from rag_jobqueue.backoff import retry_delay
from rag_jobqueue.settings import JobSettings

pytestmark = pytest.mark.anyio

PARSE = QueueSpec(table="parse_jobs", channel="parse_jobs", name="parse")
Behaviour = Callable[[Job, Lease], Awaitable[None]]


class RecordingKind(DocumentJobKind):
    """Runs `behaviour`, then finishes the job and marks the document parsed."""

    queue = PARSE
    job_type = "parse"
    working_status = "parsing"

    def __init__(self, pool: AsyncConnectionPool[Any], behaviour: Behaviour | None = None) -> None:
        self.pool = pool
        self.behaviour = behaviour
        self.started: list[tuple[uuid.UUID, int, float]] = []
        self.running = 0
        self.max_running = 0

    async def run(self, job: Job, lease: Lease) -> None:
        self.started.append((job.id, job.attempt, time.monotonic()))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.behaviour is not None:
                await self.behaviour(job, lease)
            async with self.pool.connection() as conn, conn.transaction():
                done = await lease.finish(conn)
                await publish(conn, [job_event(done, "parse")])
        finally:
            self.running -= 1


def settings(**overrides: Any) -> JobSettings:
    base: dict[str, Any] = {
        "worker_concurrency": 2,
        "worker_idle_sleep_seconds": 30,
        "job_lease_seconds": 30,
        "job_max_attempts": 3,
        "job_retry_base_seconds": 0.05,
        "worker_shutdown_grace_seconds": 5,
    }
    return JobSettings(**{**base, **overrides})


def insert_jobs(dsn: str, n: int, notify: bool = True, max_attempts: int = 3) -> list[uuid.UUID]:
    """A workspace with one member, n documents each with a queued parse job."""
    user, ws = uuid.uuid4(), uuid.uuid4()
    ids = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)", (ws, user))
        conn.execute("INSERT INTO workspace_members VALUES (%s, %s, 'owner')", (ws, user))
        for _ in range(n):
            with conn.transaction():
                doc = conn.execute(
                    "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)"
                    " VALUES (%s, 'f.txt', 'text/plain', 1, %s) RETURNING id",
                    (ws, uuid.uuid4().hex * 2),
                ).fetchone()
                assert doc is not None
                job = conn.execute(
                    "INSERT INTO parse_jobs (document_id, workspace_id, max_attempts) VALUES (%s, %s, %s) RETURNING id",
                    (doc[0], ws, max_attempts),
                ).fetchone()
                assert job is not None
                ids.append(job[0])
                if notify:
                    conn.execute("SELECT pg_notify('parse_jobs', %s)", (str(job[0]),))
    return ids


def job_rows(dsn: str) -> dict[uuid.UUID, tuple[str, int, str | None]]:
    with psycopg.connect(dsn) as conn:
        return {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute("SELECT id, status, attempt, last_error FROM parse_jobs")
        }


def job_events(dsn: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(dsn) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT payload->>'job_id', payload->>'status', (payload->>'attempt')::int FROM events"
                " WHERE type = 'job.status_updated' ORDER BY id"
            )
        ]


@contextlib.asynccontextmanager
async def running_worker(
    dsn: str, behaviour: Behaviour | None = None, **overrides: Any
) -> AsyncIterator[tuple[Worker, RecordingKind, asyncio.Event]]:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=6, open=False) as pool:
        kind = RecordingKind(pool, behaviour)
        worker = Worker(kind, pool, dsn, settings(**overrides))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        for _ in range(200):
            if worker.ready:
                break
            await asyncio.sleep(0.02)
        try:
            yield worker, kind, stop
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def all_status(dsn: str, status: str) -> Callable[[], bool]:
    return lambda: all(s == status for s, _, _ in job_rows(dsn).values())


async def test_notify_wakes_the_worker_long_before_the_poll(database_url: str) -> None:
    async with running_worker(database_url) as (_, kind, _stop):
        await asyncio.sleep(0.1)  # the worker is now idle, waiting up to 30 s
        latencies = []
        for _ in range(20):
            t0 = time.monotonic()
            insert_jobs(database_url, 1)
            await wait_until(lambda: len(kind.started) > len(latencies), timeout=5)
            latencies.append(kind.started[-1][2] - t0)
    assert max(latencies) < 0.5, latencies
    assert sorted(latencies)[len(latencies) // 2] < 0.05, latencies


async def test_without_notify_jobs_still_start_by_the_poll(database_url: str) -> None:
    async with running_worker(database_url, worker_idle_sleep_seconds=0.3) as (_, kind, _stop):
        insert_jobs(database_url, 3, notify=False)
        await wait_until(lambda: len(kind.started) == 3, timeout=5)
    assert all_status(database_url, "success")()


async def test_success_publishes_running_then_success(database_url: str) -> None:
    (job_id,) = insert_jobs(database_url, 1)
    async with running_worker(database_url):
        await wait_until(all_status(database_url, "success"))
    assert job_events(database_url) == [(str(job_id), "running", 1), (str(job_id), "success", 1)]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM documents").fetchone() == ("parsing",)


async def test_transient_errors_retry_with_backoff_then_fail_and_mark_the_document(database_url: str) -> None:
    async def flaky(job: Job, lease: Lease) -> None:
        raise ConnectionError("storage unreachable")

    (job_id,) = insert_jobs(database_url, 1, max_attempts=3)
    async with running_worker(database_url, flaky):
        await wait_until(all_status(database_url, "failed"), timeout=10)
    j = str(job_id)
    assert job_events(database_url) == [
        (j, "running", 1),
        (j, "queued", 1),
        (j, "running", 2),
        (j, "queued", 2),
        (j, "running", 3),
        (j, "failed", 3),
    ]
    with psycopg.connect(database_url) as conn:
        status, error = conn.execute("SELECT status, error FROM documents").fetchone() or ("", "")
    # A sentence and the job id; the exception's own text ("storage unreachable") stays in the log.
    assert (status, error) == ("error", f"{INTERNAL_ERROR} (gave up after 3 attempts; ref job {job_id})")


async def test_permanent_error_fails_at_once(database_url: str) -> None:
    async def corrupt(job: Job, lease: Lease) -> None:
        raise PermanentJobError("The file is not a valid PDF.")

    (job_id,) = insert_jobs(database_url, 1, max_attempts=5)
    async with running_worker(database_url, corrupt):
        await wait_until(all_status(database_url, "failed"))
    assert job_events(database_url) == [(str(job_id), "running", 1), (str(job_id), "failed", 1)]
    assert job_rows(database_url)[job_id] == ("failed", 1, f"The file is not a valid PDF. (ref job {job_id})")


async def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced_out(database_url: str) -> None:
    (job_id,) = insert_jobs(database_url, 1, notify=False)
    # A worker that claimed the job and died: its lease has expired.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE parse_jobs SET status='running', attempt=1, locked_by='dead-worker',"
            " locked_until=now() - interval '1 second' WHERE id = %s",
            (job_id,),
        )
    async with running_worker(database_url, job_lease_seconds=0.3):
        await wait_until(all_status(database_url, "success"), timeout=10)
    assert job_events(database_url) == [(str(job_id), "running", 2), (str(job_id), "success", 2)]
    # The dead worker's late completion changes nothing.
    async with AsyncConnectionPool(database_url, open=False) as pool:
        stale = Lease(
            Job(job_id, "running", 1, 3, None, "dead-worker", None, {}),  # type: ignore[arg-type]
            "dead-worker",
            Worker(RecordingKind(pool), pool, database_url, settings())._sql,
        )
        from rag_jobqueue import LeaseLost

        async with pool.connection() as conn:
            with pytest.raises(LeaseLost):
                async with conn.transaction():
                    await stale.finish(conn)
    assert job_rows(database_url)[job_id][0] == "success"


async def test_a_job_whose_owners_keep_dying_fails_with_a_readable_referenced_error(
    database_url: str,
) -> None:
    (job_id,) = insert_jobs(database_url, 1, notify=False, max_attempts=3)
    # Three owners claimed it and died (an input that kills the process every time).
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE parse_jobs SET status='running', attempt=3, locked_by='dead-worker',"
            " locked_until=now() - interval '1 second' WHERE id = %s",
            (job_id,),
        )
    async with running_worker(database_url, job_lease_seconds=0.3) as (_, kind, _stop):
        await wait_until(all_status(database_url, "failed"), timeout=10)
    status, attempt, error = job_rows(database_url)[job_id]
    assert (status, attempt) == ("failed", 4)
    assert error == f"Processing was interrupted 3 times; giving up. (ref job {job_id})"
    assert kind.started == []  # the fourth claim did not run it again
    assert job_events(database_url) == [(str(job_id), "failed", 4)]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT d.status, d.error FROM documents d JOIN parse_jobs j ON j.document_id = d.id WHERE j.id = %s",
            (job_id,),
        ).fetchone()
    assert row == ("error", error)


async def test_a_hung_job_loses_its_lease_to_another_worker_and_only_one_finishes(database_url: str) -> None:
    gate = asyncio.Event()

    async def hang_first_attempt(job: Job, lease: Lease) -> None:
        if job.attempt == 1:
            await gate.wait()  # never released: the heartbeat of worker A is stopped below

    insert_jobs(database_url, 1)
    async with running_worker(database_url, hang_first_attempt, job_lease_seconds=0.6) as (a, kind_a, _):
        await wait_until(lambda: len(kind_a.started) == 1)
        # Simulate A's process freezing: its lease stops being renewed.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE parse_jobs SET locked_until = now() - interval '1 second'")
        async with running_worker(database_url, hang_first_attempt, job_lease_seconds=0.6):
            await wait_until(all_status(database_url, "success"), timeout=10)
        await wait_until(lambda: a.in_flight == 0, timeout=5)  # A noticed and cancelled its task
    statuses = [(s, n) for _, s, n in job_events(database_url)]
    assert statuses == [("running", 1), ("running", 2), ("success", 2)]


async def test_concurrency_is_bounded_and_every_job_runs_once(database_url: str) -> None:
    async def slow(job: Job, lease: Lease) -> None:
        await asyncio.sleep(random.uniform(0.01, 0.05))

    ids = insert_jobs(database_url, 40)
    async with running_worker(database_url, slow, worker_concurrency=3) as (_, kind, _stop):
        await wait_until(all_status(database_url, "success"), timeout=20)
    assert kind.max_running == 3
    assert sorted(j for j, _, _ in kind.started) == sorted(ids)


async def test_shutdown_releases_unfinished_jobs_without_burning_an_attempt(database_url: str) -> None:
    async def forever(job: Job, lease: Lease) -> None:
        await asyncio.sleep(3600)

    (job_id,) = insert_jobs(database_url, 1)
    async with running_worker(database_url, forever, worker_shutdown_grace_seconds=0.2) as (_, kind, _stop):
        await wait_until(lambda: len(kind.started) == 1)
    assert job_rows(database_url)[job_id] == ("queued", 0, None)
    assert job_events(database_url) == [(str(job_id), "running", 1), (str(job_id), "queued", 0)]


def test_retry_delay_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(1)
    for attempt in range(1, 8):
        delay = retry_delay(attempt, 2.0, rng)
        assert 2.0 * 2 ** (attempt - 1) * 0.5 <= delay < 2.0 * 2 ** (attempt - 1) * 1.5
    assert retry_delay(50, 2.0, rng) < 300 * 1.5
