"""The job runtime against the real Postgres, with a test JobKind on a job table of its own."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rag_eventbus import publish
from rag_jobqueue import INTERNAL_ERROR, Job, Lease, LeaseLost, PermanentJobError, QueueSpec, Worker
from rag_jobqueue.queries import QueueSQL
from rag_jobqueue.settings import JobSettings
from rag_jobqueue.worker import job_retry_policy

from .conftest import QUEUE, TestKind, enqueue_jobs, job_event

pytestmark = pytest.mark.anyio

Behaviour = Callable[[Job, Lease], Awaitable[None]]
# A queue on the same table whose channel no worker listens to: its jobs ring nobody.
SILENT = dataclasses.replace(QUEUE, channel="test_jobs_unheard")


class RecordingKind(TestKind):
    """Runs `behaviour`, then finishes the job and publishes its success."""

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
                await publish(conn, [job_event(done)])
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


async def insert_jobs(dsn: str, n: int, notify: bool = True, max_attempts: int = 3) -> list[uuid.UUID]:
    """A tenant with one user and n queued jobs (NOTIFY on the workers' channel unless `notify` is false)."""
    return await enqueue_jobs(dsn, n, queue=QUEUE if notify else SILENT, max_attempts=max_attempts)


def job_rows(dsn: str) -> dict[uuid.UUID, tuple[str, int, str | None]]:
    with psycopg.connect(dsn) as conn:
        return {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute("SELECT id, status, attempt, last_error FROM test_jobs")
        }


def job_events(dsn: str) -> list[tuple[str, str, int]]:
    """(job id, status, attempt) of every published job event, in order."""
    with psycopg.connect(dsn) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT payload->>'job_id', payload->>'status', (payload->>'attempt')::int FROM events"
                " WHERE type = 'job.status_updated' ORDER BY id"
            )
        ]


def failed_event_error(dsn: str) -> str:
    """The error `on_failed` was given, as its event carries it."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT payload->>'error' FROM events WHERE payload->>'status' = 'failed'"
        ).fetchone()
    assert row is not None, "no failed event"
    return str(row[0])


@contextlib.asynccontextmanager
async def running_worker(
    dsn: str, behaviour: Behaviour | None = None, *, queue: QueueSpec = QUEUE, **overrides: Any
) -> AsyncIterator[tuple[Worker, RecordingKind, asyncio.Event]]:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=6, open=False) as pool:
        kind = RecordingKind(pool, behaviour)
        kind.queue = queue
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


async def test_notify_wakes_the_worker_long_before_the_poll(jobs_database_url: str) -> None:
    async with running_worker(jobs_database_url) as (_, kind, _stop):
        await asyncio.sleep(0.1)  # the worker is now idle, waiting up to 30 s
        latencies = []
        for _ in range(20):
            t0 = time.monotonic()
            await insert_jobs(jobs_database_url, 1)
            await wait_until(lambda: len(kind.started) > len(latencies), timeout=5)
            latencies.append(kind.started[-1][2] - t0)
    assert max(latencies) < 0.5, latencies
    assert sorted(latencies)[len(latencies) // 2] < 0.05, latencies


async def test_without_notify_jobs_still_start_by_the_poll(jobs_database_url: str) -> None:
    async with running_worker(jobs_database_url, worker_idle_sleep_seconds=0.3) as (_, kind, _stop):
        await insert_jobs(jobs_database_url, 3, notify=False)
        await wait_until(lambda: len(kind.started) == 3, timeout=5)
    assert all_status(jobs_database_url, "success")()


async def test_success_publishes_running_then_success(jobs_database_url: str) -> None:
    (job_id,) = await insert_jobs(jobs_database_url, 1)
    async with running_worker(jobs_database_url):
        await wait_until(all_status(jobs_database_url, "success"))
    assert job_events(jobs_database_url) == [(str(job_id), "running", 1), (str(job_id), "success", 1)]


async def test_transient_errors_retry_with_backoff_then_fail_and_tell_the_kind(
    jobs_database_url: str,
) -> None:
    async def flaky(job: Job, lease: Lease) -> None:
        raise ConnectionError("storage unreachable")

    (job_id,) = await insert_jobs(jobs_database_url, 1, max_attempts=3)
    async with running_worker(jobs_database_url, flaky):
        await wait_until(all_status(jobs_database_url, "failed"), timeout=10)
    j = str(job_id)
    assert job_events(jobs_database_url) == [
        (j, "running", 1),
        (j, "queued", 1),
        (j, "running", 2),
        (j, "queued", 2),
        (j, "running", 3),
        (j, "failed", 3),
    ]
    # A sentence and the job id; the exception's own text ("storage unreachable") stays in the log.
    error = f"{INTERNAL_ERROR} (gave up after 3 attempts; ref job {job_id})"
    assert job_rows(jobs_database_url)[job_id] == ("failed", 3, error)
    assert failed_event_error(jobs_database_url) == error


async def test_permanent_error_fails_at_once(jobs_database_url: str) -> None:
    async def corrupt(job: Job, lease: Lease) -> None:
        raise PermanentJobError("The file is not a valid PDF.")

    (job_id,) = await insert_jobs(jobs_database_url, 1, max_attempts=5)
    async with running_worker(jobs_database_url, corrupt):
        await wait_until(all_status(jobs_database_url, "failed"))
    assert job_events(jobs_database_url) == [(str(job_id), "running", 1), (str(job_id), "failed", 1)]
    assert job_rows(jobs_database_url)[job_id] == (
        "failed",
        1,
        f"The file is not a valid PDF. (ref job {job_id})",
    )


async def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced_out(jobs_database_url: str) -> None:
    (job_id,) = await insert_jobs(jobs_database_url, 1, notify=False)
    # A worker that claimed the job and died: its lease has expired.
    with psycopg.connect(jobs_database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE test_jobs SET status='running', attempt=1, locked_by='dead-worker',"
            " locked_until=now() - interval '1 second' WHERE id = %s",
            (job_id,),
        )
    async with running_worker(jobs_database_url, job_lease_seconds=0.3):
        await wait_until(all_status(jobs_database_url, "success"), timeout=10)
    assert job_events(jobs_database_url) == [(str(job_id), "running", 2), (str(job_id), "success", 2)]
    # The dead worker's late completion changes nothing.
    async with AsyncConnectionPool(jobs_database_url, open=False) as pool:
        stale = Lease(
            Job(job_id, "running", 1, 3, None, "dead-worker", None, {}),  # type: ignore[arg-type]
            "dead-worker",
            QueueSQL(QUEUE),
        )
        async with pool.connection() as conn:
            with pytest.raises(LeaseLost):
                async with conn.transaction():
                    await stale.finish(conn)
    assert job_rows(jobs_database_url)[job_id][0] == "success"


async def test_a_job_whose_owners_keep_dying_fails_with_a_readable_referenced_error(
    jobs_database_url: str,
) -> None:
    (job_id,) = await insert_jobs(jobs_database_url, 1, notify=False, max_attempts=3)
    # Three owners claimed it and died (an input that kills the process every time).
    with psycopg.connect(jobs_database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE test_jobs SET status='running', attempt=3, locked_by='dead-worker',"
            " locked_until=now() - interval '1 second' WHERE id = %s",
            (job_id,),
        )
    async with running_worker(jobs_database_url, job_lease_seconds=0.3) as (_, kind, _stop):
        await wait_until(all_status(jobs_database_url, "failed"), timeout=10)
    status, attempt, error = job_rows(jobs_database_url)[job_id]
    assert (status, attempt) == ("failed", 4)
    assert error == f"Processing was interrupted 3 times; giving up. (ref job {job_id})"
    assert kind.started == []  # the fourth claim did not run it again
    assert job_events(jobs_database_url) == [(str(job_id), "failed", 4)]
    assert failed_event_error(jobs_database_url) == error


async def test_a_hung_job_loses_its_lease_to_another_worker_and_only_one_finishes(
    jobs_database_url: str,
) -> None:
    gate = asyncio.Event()

    async def hang_first_attempt(job: Job, lease: Lease) -> None:
        if job.attempt == 1:
            await gate.wait()  # never released: the heartbeat of worker A is stopped below

    await insert_jobs(jobs_database_url, 1)
    async with running_worker(jobs_database_url, hang_first_attempt, job_lease_seconds=0.6) as (a, kind_a, _):
        await wait_until(lambda: len(kind_a.started) == 1)
        # Simulate A's process freezing: its lease stops being renewed.
        with psycopg.connect(jobs_database_url, autocommit=True) as conn:
            conn.execute("UPDATE test_jobs SET locked_until = now() - interval '1 second'")
        async with running_worker(jobs_database_url, hang_first_attempt, job_lease_seconds=0.6):
            await wait_until(all_status(jobs_database_url, "success"), timeout=10)
        await wait_until(lambda: a.in_flight == 0, timeout=5)  # A noticed and cancelled its task
    statuses = [(s, n) for _, s, n in job_events(jobs_database_url)]
    assert statuses == [("running", 1), ("running", 2), ("success", 2)]


async def test_concurrency_is_bounded_and_every_job_runs_once(jobs_database_url: str) -> None:
    async def slow(job: Job, lease: Lease) -> None:
        await asyncio.sleep(random.uniform(0.01, 0.05))

    ids = await insert_jobs(jobs_database_url, 40)
    async with running_worker(jobs_database_url, slow, worker_concurrency=3) as (_, kind, _stop):
        await wait_until(all_status(jobs_database_url, "success"), timeout=20)
    assert kind.max_running == 3
    assert sorted(j for j, _, _ in kind.started) == sorted(ids)


async def test_shutdown_releases_unfinished_jobs_without_burning_an_attempt(jobs_database_url: str) -> None:
    async def forever(job: Job, lease: Lease) -> None:
        await asyncio.sleep(3600)

    (job_id,) = await insert_jobs(jobs_database_url, 1)
    async with running_worker(jobs_database_url, forever, worker_shutdown_grace_seconds=0.2) as (
        _,
        kind,
        _stop,
    ):
        await wait_until(lambda: len(kind.started) == 1)
    assert job_rows(jobs_database_url)[job_id] == ("queued", 0, None)
    assert job_events(jobs_database_url) == [(str(job_id), "running", 1), (str(job_id), "queued", 0)]


def test_retry_delay_grows_exponentially_with_bounded_jitter() -> None:
    # docs/jobs.md: base * 2^(attempt-1), capped at 300 s, equal jitter (between half and all of it).
    policy = job_retry_policy(JobSettings(job_retry_base_seconds=2.0))
    rng = random.Random(1)
    for attempt in range(1, 8):
        delay = policy.backoff(attempt, rng)
        assert 2.0 * 2 ** (attempt - 1) * 0.5 <= delay <= 2.0 * 2 ** (attempt - 1)
    assert 150 <= policy.backoff(50, rng) <= 300
