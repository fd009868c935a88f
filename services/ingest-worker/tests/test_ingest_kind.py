"""The ingest job against the real Postgres (pgvector) and a real S3 server."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from rag_core.queues import INGEST_QUEUE, queue_document_job
from rag_embedding import Embedder, HashEmbedder, OpenAIEmbedder
from rag_ingest_worker.compute import ComputePool
from rag_ingest_worker.kind import IngestKind
from rag_jobqueue import Worker
from rag_jobqueue.settings import JobSettings
from rag_retry import RetryPolicy
from rag_storage import ObjectStore
from rag_storage.settings import S3Settings
from rag_testing.fake_embeddings import FakeEmbeddings, Scripted

from .conftest import insert_parsed_document

pytestmark = pytest.mark.anyio

SECTION = "## Section {n}\n\n" + "Paragraph {n} talks about topic {n} in some detail. " * 12 + "\n\n"


@asynccontextmanager
async def ingest_worker(
    dsn: str, s3_env: dict[str, str], embedder: Embedder | None = None, **kind_options: Any
) -> AsyncIterator[IngestKind]:
    settings = JobSettings(worker_idle_sleep_seconds=30, job_retry_base_seconds=0.05)
    async with (
        AsyncConnectionPool(dsn, min_size=1, max_size=5, open=False) as pool,
        ObjectStore(S3Settings(**{k.lower(): v for k, v in s3_env.items()})) as store,
    ):
        compute = ComputePool(2)
        await asyncio.to_thread(compute.start)
        kind = IngestKind(pool, store, embedder or HashEmbedder(), compute, **kind_options)
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(kind, pool, dsn, settings).run(stop))
        try:
            yield kind
        finally:
            stop.set()
            await task
            compute.close()


async def wait_for_status(dsn: str, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT status FROM documents").fetchone()
        if row and row[0] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"document never reached {status}")


def events(dsn: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(dsn) as conn:
        return [(t, p) for t, p in conn.execute("SELECT type, payload FROM events ORDER BY id")]


async def test_ingest_stores_chunks_with_model_and_publishes_the_contract_sequence(
    database_url: str, s3_env: dict[str, str]
) -> None:
    text = "".join(SECTION.format(n=n) for n in range(5))
    doc = await insert_parsed_document(database_url, s3_env, text)
    async with ingest_worker(database_url, s3_env):
        await wait_for_status(database_url, "ingested")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT ordinal, text, char_start, char_end, embedding_model, vector_dims(embedding)"
            " FROM chunks WHERE document_id = %s ORDER BY ordinal",
            (doc.document_id,),
        ).fetchall()
        count = conn.execute("SELECT chunk_count FROM documents").fetchone()
    assert len(rows) > 1 and count == (len(rows),)
    assert [r[0] for r in rows] == list(range(len(rows)))
    for _, chunk, start, end, model, dims in rows:
        assert text[start:end] == chunk
        assert model == HashEmbedder().model_name and dims == 384
    seq = [(t, p.get("status")) for t, p in events(database_url)]
    assert seq == [
        ("job.status_updated", "running"),
        ("document.status_updated", "ingesting"),
        ("job.status_updated", "success"),
        ("document.status_updated", "ingested"),
    ]


async def test_running_an_ingest_again_replaces_chunks_instead_of_duplicating(
    database_url: str, s3_env: dict[str, str]
) -> None:
    text = "".join(SECTION.format(n=n) for n in range(3))
    doc = await insert_parsed_document(database_url, s3_env, text)
    async with ingest_worker(database_url, s3_env):
        await wait_for_status(database_url, "ingested")
        with psycopg.connect(database_url, autocommit=True) as conn:
            first = conn.execute("SELECT count(*) FROM chunks").fetchone()
        async with await AsyncConnection.connect(database_url, autocommit=True) as aconn:
            await queue_document_job(aconn, INGEST_QUEUE, doc.document_id, doc.workspace_id, 5)
        await asyncio.sleep(0.2)
        await wait_for_status(database_url, "ingested")
        for _ in range(100):
            with psycopg.connect(database_url) as conn:
                done = conn.execute("SELECT count(*) FROM ingest_jobs WHERE status = 'success'").fetchone()
            if done == (2,):
                break
            await asyncio.sleep(0.05)
    with psycopg.connect(database_url) as conn:
        again = conn.execute("SELECT count(*) FROM chunks").fetchone()
    assert done == (2,)
    assert first == again


async def test_long_documents_report_progress_at_least_every_tenth(
    database_url: str, s3_env: dict[str, str]
) -> None:
    text = "".join(SECTION.format(n=n) for n in range(200))
    await insert_parsed_document(database_url, s3_env, text)
    async with ingest_worker(database_url, s3_env, batch_size=8):
        await wait_for_status(database_url, "ingested", timeout=60)
    progress = [p["progress"] for t, p in events(database_url) if "progress" in p]
    assert progress, "no progress event"
    total = progress[0]["total"]
    done = [0] + [p["done"] for p in progress] + [total]
    assert all(b > a for a, b in itertools.pairwise(done))
    assert max(b - a for a, b in itertools.pairwise(done)) <= -(-total // 10)  # at most a tenth per step


async def test_missing_parsed_text_fails_at_once_with_a_readable_error(
    database_url: str, s3_env: dict[str, str]
) -> None:
    doc = await insert_parsed_document(database_url, s3_env, "some text")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM files WHERE document_id = %s", (doc.document_id,))
    async with ingest_worker(database_url, s3_env):
        await wait_for_status(database_url, "error")
    with psycopg.connect(database_url) as conn:
        error = conn.execute("SELECT error FROM documents").fetchone()
        attempts = conn.execute("SELECT status, attempt FROM ingest_jobs").fetchone()
    assert error == (
        f"The parsed text of this document is missing; reprocess the document. (ref job {doc.job_id})",
    )
    assert attempts == ("failed", 1)


async def test_a_parsed_text_over_the_limit_fails_at_once_with_the_limit_in_mb(
    database_url: str, s3_env: dict[str, str]
) -> None:
    doc = await insert_parsed_document(database_url, s3_env, "x" * (1024 * 1024 + 1))
    async with ingest_worker(database_url, s3_env, max_text_bytes=1024 * 1024):
        await wait_for_status(database_url, "error")
    with psycopg.connect(database_url) as conn:
        error = conn.execute("SELECT error FROM documents").fetchone()
        attempts = conn.execute("SELECT status, attempt FROM ingest_jobs").fetchone()
    assert error == (f"The extracted text is larger than the 1 MB limit. (ref job {doc.job_id})",)
    assert attempts == ("failed", 1)  # permanent: not retried as a storage outage would be


async def test_an_embedding_endpoint_that_answers_429_three_times_costs_no_attempt(
    database_url: str, s3_env: dict[str, str]
) -> None:
    text = "".join(SECTION.format(n=n) for n in range(3))
    await insert_parsed_document(database_url, s3_env, text)
    server = FakeEmbeddings()
    server.script = [Scripted(429, {"Retry-After": "0.1"}) for _ in range(3)]
    try:
        retry = RetryPolicy(base_seconds=0.01, max_seconds=0.05)
        embedder = OpenAIEmbedder(server.base_url, "fake-embeddings", "key", retry=retry)
        async with ingest_worker(database_url, s3_env, embedder):
            await wait_for_status(database_url, "ingested")
    finally:
        server.close()
    assert len(server.requests) == 4  # three 429s, then the answer
    with psycopg.connect(database_url) as conn:
        job = conn.execute("SELECT status, attempt, last_error FROM ingest_jobs").fetchone()
        model = conn.execute("SELECT DISTINCT embedding_model FROM chunks").fetchall()
    assert job == ("success", 1, None)
    assert model == [("fake-embeddings",)]
