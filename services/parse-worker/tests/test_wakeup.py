"""Wake-up: a job starts milliseconds after its commit (NOTIFY), and still starts without it (poll).

Latency is measured from the commit of the inserting transaction (the client's clock,
right after COMMIT returns) to the job's `started_at` (set by the claiming transaction):
one machine, one clock. WORKER_IDLE_SLEEP_SECONDS=30 throughout, so any job that waited
for the poll would show up as a latency of seconds, not milliseconds.
"""

from __future__ import annotations

import time
import uuid

import anyio
import pytest
from psycopg.conninfo import make_conninfo

from rag_testing.prometheus import metric_value

from .conftest import Stack, Upload, kill_listener, log_lines, metrics_text, percentile

pytestmark = pytest.mark.anyio

LISTENER_APP = "parse-listener"


async def started_latency(stack: Stack, up: Upload, timeout: float = 10) -> float:
    """Seconds from commit to started_at, once the job has started."""
    deadline = time.monotonic() + timeout
    while True:
        cur = await stack.conn.execute(
            "SELECT extract(epoch FROM started_at)::float8 FROM parse_jobs WHERE id = %s", (up.job_id,)
        )
        row = await cur.fetchone()
        if row is not None and row[0] is not None:
            return float(row[0]) - up.committed_at
        if time.monotonic() > deadline:
            raise AssertionError(f"job {up.job_id} did not start in {timeout}s")
        await anyio.sleep(0.002)


def summary(latencies: list[float]) -> str:
    ms = [x * 1000 for x in latencies]
    return (
        f"n={len(ms)} p50={percentile(ms, 50):.1f}ms p90={percentile(ms, 90):.1f}ms "
        f"p99={percentile(ms, 99):.1f}ms max={max(ms):.1f}ms"
    )


async def test_an_idle_worker_starts_a_job_within_100_ms_of_its_commit(stack: Stack) -> None:
    stack.start_worker(worker_idle_sleep_seconds=30)
    latencies = []
    for i in range(60):
        await anyio.sleep(0.02)  # the worker is idle, blocked on NOTIFY / a 30 s poll
        up = await stack.upload(f"note-{i}.txt", f"note {i}".encode())
        latencies.append(await started_latency(stack, up))
        await stack.wait_job(up.job_id, "success")
    print(f"\nwake-up latency, idle worker: {summary(latencies)}")
    assert percentile(latencies, 50) < 0.1, summary(latencies)
    assert percentile(latencies, 99) < 0.1 or max(latencies) < 0.5, summary(latencies)


async def test_a_thousand_jobs_back_to_back_none_waits_for_the_poll_even_after_listener_kills(
    stack: Stack,
) -> None:
    listen_dsn = make_conninfo(stack.dsn, application_name=LISTENER_APP)
    worker = stack.start_worker(worker_idle_sleep_seconds=30, eventbus_database_url=listen_dsn)
    original = stack.put_object(f"shared/{uuid.uuid4()}", b"a tiny document")
    latencies: list[float] = []
    after_kill: list[float] = []
    for i in range(1000):
        killed = i > 0 and i % 200 == 0
        if killed:
            # Let the worker go idle first (blocked on NOTIFY / the 30 s poll), so that no
            # freed slot can wake it: only the listener's reconnect or a NOTIFY can.
            await stack.wait_for(
                "SELECT count(*) FROM parse_jobs WHERE status = 'success'", expect=i, timeout=30
            )
            await anyio.sleep(0.05)
            assert kill_listener(stack.dsn, LISTENER_APP) == 1
        up = await stack.upload(f"doc-{i}.txt", b"a tiny document", shared_key=original)
        latency = await started_latency(stack, up)
        latencies.append(latency)
        if killed:
            after_kill.append(latency)
    await stack.wait_for("SELECT count(*) FROM parse_jobs WHERE status = 'success'", expect=1000, timeout=60)
    print(f"\nwake-up latency, 1000 back-to-back jobs: {summary(latencies)}")
    print(f"right after pg_terminate_backend of the listener: {[round(x * 1000, 1) for x in after_kill]} ms")
    # The poll is 30 s away (and the lease rescue 10 s): any job that waited for either shows as seconds.
    assert max(latencies) < 1.0, summary(latencies)
    assert percentile(latencies, 50) < 0.1, summary(latencies)
    # The listener really was cut four times and came back each time.
    assert len([x for x in log_lines(worker) if x.get("event") == "listener_connected"]) == 5
    assert await stack.count("SELECT count(*) FROM ingest_jobs") == 1000
    assert await stack.count("SELECT max(attempt) FROM parse_jobs") == 1


async def test_with_every_notification_lost_jobs_still_start_by_the_poll(stack: Stack) -> None:
    worker = stack.start_worker(worker_idle_sleep_seconds=1)
    uploads = []
    for i in range(5):
        uploads.append(await stack.upload(f"quiet-{i}.txt", f"no doorbell {i}".encode(), notify=False))
        await anyio.sleep(0.3)
    latencies = [await started_latency(stack, up, timeout=5) for up in uploads]
    for up in uploads:
        await stack.wait_job(up.job_id, "success")
    print(f"\nstart latency without NOTIFY (poll every 1 s): {summary(latencies)}")
    assert max(latencies) < 1.0 + 0.5
    assert metric_value(metrics_text(worker), "rag_worker_wakeups_total", queue="parse", cause="poll") >= 1


async def test_poll_only_worker_without_a_listener_finishes_every_job(stack: Stack) -> None:
    stack.start_worker(worker_idle_sleep_seconds=0.5, worker_listen="false")
    uploads = [await stack.upload(f"p-{i}.txt", f"poll only {i}".encode()) for i in range(5)]
    for up in uploads:
        await stack.wait_job(up.job_id, "success", timeout=10)
