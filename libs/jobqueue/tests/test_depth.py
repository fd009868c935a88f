"""The queue's depth as an operator's metrics see it (rag_queue_*), read from a real table."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rag_jobqueue import metrics
from rag_jobqueue.depth import sample_depth
from rag_jobqueue.queries import QueueSQL

from .conftest import QUEUE, enqueue_jobs
from .test_worker import running_worker

pytestmark = pytest.mark.anyio


def gauges() -> dict[str, float]:
    labels = {"queue": QUEUE.name}
    return {
        "due": metrics.QUEUE_DEPTH.labels(**labels)._value.get(),
        "delayed": metrics.QUEUE_DELAYED.labels(**labels)._value.get(),
        "running": metrics.QUEUE_RUNNING.labels(**labels)._value.get(),
        "oldest": metrics.QUEUE_OLDEST_AGE.labels(**labels)._value.get(),
        "sampled": metrics.QUEUE_SAMPLED.labels(**labels)._value.get(),
    }


async def test_due_delayed_running_and_the_oldest_wait_are_read_from_the_table(
    jobs_database_url: str,
) -> None:
    now = datetime.now(UTC)
    await enqueue_jobs(
        jobs_database_url, 3, run_at=[now - timedelta(minutes=10), now - timedelta(seconds=5), now]
    )
    await enqueue_jobs(jobs_database_url, 2, run_at=[now + timedelta(hours=1)] * 2)  # retries in backoff
    with psycopg.connect(jobs_database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE test_jobs SET status = 'running' WHERE run_at = (SELECT min(run_at) FROM test_jobs)"
        )
        conn.execute("INSERT INTO test_jobs (tenant, status) SELECT tenant, 'success' FROM test_jobs LIMIT 1")
    before = time.time()
    async with AsyncConnectionPool(jobs_database_url, min_size=1, max_size=1, open=False) as pool:
        await sample_depth(pool, QUEUE, QueueSQL(QUEUE))
    figures = gauges()
    assert (figures["due"], figures["delayed"], figures["running"]) == (2, 2, 1)
    assert 4 <= figures["oldest"] < 60  # the job due 5 s ago; the 10-minute one is running
    assert figures["sampled"] >= before


async def test_an_empty_queue_reads_zero(jobs_database_url: str) -> None:
    async with AsyncConnectionPool(jobs_database_url, min_size=1, max_size=1, open=False) as pool:
        await sample_depth(pool, QUEUE, QueueSQL(QUEUE))
    assert {k: v for k, v in gauges().items() if k != "sampled"} == {
        "due": 0,
        "delayed": 0,
        "running": 0,
        "oldest": 0,
    }


async def test_a_worker_keeps_the_figures_current(jobs_database_url: str) -> None:
    """A worker with no free slot (concurrency 1, a job that waits) samples as it runs."""
    release = asyncio.Event()

    async def hold(*_: object) -> None:
        await release.wait()

    await enqueue_jobs(jobs_database_url, 4)
    async with running_worker(
        jobs_database_url, hold, worker_concurrency=1, queue_metrics_interval_seconds=0.1
    ) as (worker, _kind, _stop):
        deadline = time.monotonic() + 10
        while (gauges()["running"], gauges()["due"]) != (1, 3):
            assert time.monotonic() < deadline, gauges()
            await asyncio.sleep(0.05)
        release.set()
        while gauges()["due"] != 0 or gauges()["running"] != 0:
            assert time.monotonic() < deadline + 10, gauges()
            await asyncio.sleep(0.05)
    assert worker.in_flight == 0
