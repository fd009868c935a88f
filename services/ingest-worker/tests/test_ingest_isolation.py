"""While an ingest job computes, the worker stays alive: probes answer, leases are renewed.

A real Worker (real Postgres, real S3) runs an ingest job whose chunking step first spends
about three seconds in one GIL-holding regex call (the chunker's sentence pattern as it
was before it was made linear, on a run of dots), with a one-second lease. A thread polls
the worker's real /healthz over HTTP and the job row: the probe must answer within a
second every time, and the lease must be renewed throughout with no takeover. And a job
that times out kills its computation: the child does not outlive it.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rag_embedding import HashEmbedder
from rag_ingest_worker.chunking import Chunk
from rag_ingest_worker.compute import ComputePool
from rag_ingest_worker.kind import IngestKind
from rag_jobqueue import Worker
from rag_jobqueue.settings import JobSettings
from rag_observability import ProbeServer
from rag_storage import ObjectStore
from rag_storage.settings import S3Settings
from rag_testing.health_poller import HealthPoller

from .conftest import insert_parsed_document

pytestmark = pytest.mark.anyio

QUADRATIC_SENTENCE_END = r"[.!?…。！？]+[\"'”’)\]]*\s+"
SECONDS_OF_DOTS = "." * 16_000  # ~2.5 s of one regex call on an idle machine


class SlowCompute(ComputePool):
    """Chunks like the real pool after one long GIL-holding call in the child."""

    async def chunk(self, text: str) -> list[Chunk]:
        await self.run(re.search, QUADRATIC_SENTENCE_END, SECONDS_OF_DOTS)
        return await super().chunk(text)


class Observer(HealthPoller):
    """Polls /healthz and samples the job row, from outside the worker's event loop."""

    def __init__(self, health_url: str, dsn: str) -> None:
        super().__init__(health_url, timeout=5)
        self.dsn = dsn
        self.leases: set[Any] = set()
        self.attempts: set[int] = set()
        self._conn: psycopg.Connection[Any] | None = None

    def observe(self) -> None:
        if self._conn is None:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        row = self._conn.execute("SELECT status, attempt, locked_until FROM ingest_jobs").fetchone()
        if row is not None and row[0] == "running":
            self.attempts.add(row[1])
            self.leases.add(row[2])

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self._conn is not None:
                self._conn.close()


async def test_probes_answer_and_the_lease_is_renewed_while_a_job_computes(
    database_url: str, s3_env: dict[str, str]
) -> None:
    text = "## Section\n\n" + "A sentence about the topic. " * 200
    doc = await insert_parsed_document(database_url, s3_env, text)
    settings = JobSettings(job_lease_seconds=1.0, worker_idle_sleep_seconds=30)
    compute = SlowCompute(1)
    await asyncio.to_thread(compute.start)
    async with (
        AsyncConnectionPool(database_url, min_size=1, max_size=5, open=False) as pool,
        ObjectStore(S3Settings(**{k.lower(): v for k, v in s3_env.items()})) as store,
    ):
        worker = Worker(IngestKind(pool, store, HashEmbedder(), compute), pool, database_url, settings)
        probes = ProbeServer(0, lambda: worker.ready, host="127.0.0.1")
        await probes.start()
        observer = Observer(f"http://127.0.0.1:{probes.port}/healthz", database_url)
        observer.start()
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with psycopg.connect(database_url) as conn:
                    row = conn.execute("SELECT status, attempt FROM ingest_jobs").fetchone()
                if row is not None and row[0] in ("success", "failed"):
                    break
                await asyncio.sleep(0.1)
        finally:
            observer.stop.set()
            await asyncio.to_thread(observer.join)
            stop.set()
            await task
            await probes.stop()
            compute.close()
    assert row == ("success", 1), row
    with psycopg.connect(database_url) as conn:
        status = conn.execute("SELECT status FROM documents WHERE id = %s", (doc.document_id,)).fetchone()
    assert status == ("ingested",)
    assert not observer.failures, observer.failures
    assert len(observer.latencies) >= 15, "the job ran for at least the regex call"
    assert max(observer.latencies) < 1.0, sorted(observer.latencies)[-5:]
    assert observer.attempts == {1}, "no takeover"
    # One heartbeat per lease/3: a job running ~2.5 s gets several new leases.
    assert len(observer.leases) >= 4, observer.leases


class RunawayCompute(ComputePool):
    """A chunking step that would take minutes (the old pattern on 300,000 dots)."""

    async def chunk(self, text: str) -> list[Chunk]:
        await self.run(re.search, QUADRATIC_SENTENCE_END, "." * 300_000)
        return await super().chunk(text)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


async def test_a_job_that_times_out_fails_readably_and_its_computation_is_killed(
    database_url: str, s3_env: dict[str, str]
) -> None:
    doc = await insert_parsed_document(database_url, s3_env, "Some text.")
    settings = JobSettings(job_lease_seconds=5.0, worker_idle_sleep_seconds=30)
    compute = RunawayCompute(1)
    [child] = await asyncio.to_thread(compute.start)
    async with (
        AsyncConnectionPool(database_url, min_size=1, max_size=5, open=False) as pool,
        ObjectStore(S3Settings(**{k.lower(): v for k, v in s3_env.items()})) as store,
    ):
        kind = IngestKind(pool, store, HashEmbedder(), compute, timeout_seconds=1.5)
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(kind, pool, database_url, settings).run(stop))
        try:
            for _ in range(300):
                with psycopg.connect(database_url) as conn:
                    row = conn.execute("SELECT status, attempt, last_error FROM ingest_jobs").fetchone()
                if row is not None and row[0] == "failed":
                    break
                await asyncio.sleep(0.1)
            for _ in range(100):  # killed at the timeout; reaping may take a moment
                if not alive(child):
                    break
                await asyncio.sleep(0.05)
            child_alive = alive(child)
        finally:
            stop.set()
            await task
            compute.close()
    assert row is not None and row[:2] == ("failed", 1), row
    assert row[2].startswith("Processing took longer than 1.5 seconds and was stopped."), row
    assert not child_alive, "the runaway computation outlived its job"
    assert compute.replaced == 1
    with psycopg.connect(database_url) as conn:
        status = conn.execute("SELECT status FROM documents WHERE id = %s", (doc.document_id,)).fetchone()
    assert status == ("error",)
