"""The orphan sweeper (rag_api.sweeper) against the real Postgres and the moto S3 server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rag_api.locks import SWEEP_LOCK_KEY
from rag_api.metrics import ORPHAN_SWEEP_OBJECTS, STALE_UPLOADS_ABORTED
from rag_api.sweeper import SweepResult, count_sweep, document_id_of, sweep_once
from rag_core.storage_keys import document_prefix, original_key
from rag_storage import ObjectStore
from rag_storage.settings import S3Settings

pytestmark = pytest.mark.anyio

HOUR, DAY = 3600.0, 86400.0
CENTURY = 100 * 365 * DAY


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=3, open=False) as opened:
        yield opened


@pytest.fixture
async def store(s3_env: dict[str, str]) -> AsyncIterator[ObjectStore]:
    async with ObjectStore(S3Settings(**{k.lower(): v for k, v in s3_env.items()})) as opened:
        yield opened


def live_document(dsn: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A workspace and a document row in it: (workspace_id, document_id)."""
    ws = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)", (ws, uuid.uuid4()))
        row = conn.execute(
            "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)"
            " VALUES (%s, 'f.txt', 'text/plain', 1, %s) RETURNING id",
            (ws, uuid.uuid4().hex * 2),
        ).fetchone()
    assert row is not None
    return ws, row[0]


async def put_document_objects(store: ObjectStore, ws: uuid.UUID, doc: uuid.UUID) -> list[str]:
    keys = [original_key(ws, doc), document_prefix(ws, doc) + "parsed.txt"]
    for key in keys:
        await store.put_bytes(key, b"text", "text/plain")
    return keys


async def keys_of(store: ObjectStore) -> set[str]:
    return {o.key async for page in store.list_objects("") for o in page}


async def sweep(pool: AsyncConnectionPool[Any], store: ObjectStore, **ages: float) -> SweepResult:
    result = await sweep_once(
        pool,
        store,
        min_object_age_seconds=ages.get("objects", 0.0),
        max_upload_age_seconds=ages.get("uploads", 0.0),
    )
    assert result is not None, "the sweep was skipped though nobody else holds the lock"
    return result


def test_document_id_is_read_from_our_keys_only() -> None:
    ws, doc = uuid.uuid4(), uuid.uuid4()
    assert document_id_of(original_key(ws, doc)) == doc
    assert document_id_of(document_prefix(ws, doc) + "parsed.txt") == doc
    assert document_id_of(f"workspaces/{ws}/documents/not-a-uuid/original") is None
    assert document_id_of(f"workspaces/{ws}/notes.txt") is None
    assert document_id_of(f"elsewhere/workspaces/{ws}/documents/{doc}/original") is None


async def test_orphans_are_deleted_and_a_live_documents_objects_are_kept(
    database_url: str, pool: AsyncConnectionPool[Any], store: ObjectStore
) -> None:
    ws, doc = live_document(database_url)
    live_keys = await put_document_objects(store, ws, doc)
    deleted_doc = uuid.uuid4()  # no row: deleted, or never committed
    orphan_keys = await put_document_objects(store, ws, deleted_doc)
    foreign = [f"workspaces/{ws}/notes.txt", "outside/of/workspaces.txt"]
    for key in foreign:
        await store.put_bytes(key, b"x", "text/plain")

    result = await sweep(pool, store)

    assert await keys_of(store) == {*live_keys, *foreign}
    assert (result.objects_deleted, result.objects_unrecognised) == (len(orphan_keys), 1)
    assert result.objects_seen == len(live_keys) + len(orphan_keys) + 1  # only under workspaces/


async def test_an_orphan_younger_than_the_age_threshold_is_kept(
    database_url: str, pool: AsyncConnectionPool[Any], store: ObjectStore
) -> None:
    # The window the threshold protects: the object is written, its row is not committed yet.
    ws = uuid.uuid4()
    uploading = await put_document_objects(store, ws, uuid.uuid4())
    result = await sweep(pool, store, objects=HOUR)
    assert await keys_of(store) == set(uploading)
    assert (result.objects_deleted, result.objects_too_young) == (0, len(uploading))


async def test_two_sweepers_at_once_one_sweeps_every_page_the_other_skips(
    database_url: str, pool: AsyncConnectionPool[Any], store: ObjectStore
) -> None:
    ws, doc = live_document(database_url)
    live_keys = await put_document_objects(store, ws, doc)
    for _ in range(520):  # 1,040 orphan objects: more than one listing page of 1,000
        await put_document_objects(store, ws, uuid.uuid4())
    both = await asyncio.gather(
        *(sweep_once(pool, store, min_object_age_seconds=0, max_upload_age_seconds=0) for _ in range(2))
    )
    done = [result for result in both if result is not None]
    assert len(done) == 1, both
    assert done[0].objects_deleted == 1040
    assert await keys_of(store) == set(live_keys)


async def test_stale_multipart_uploads_are_aborted_and_recent_ones_kept(
    pool: AsyncConnectionPool[Any], store: ObjectStore
) -> None:
    ws = uuid.uuid4()
    writer = store.writer(original_key(ws, uuid.uuid4()), "application/octet-stream", part_size=1024)
    await writer.write(b"x" * 2048)  # a client went away mid-upload: parts stored, never completed
    # moto reports every upload as begun in 2010: "recent" can only be shown with a huge cut-off.
    kept = await sweep(pool, store, uploads=CENTURY)
    assert kept.uploads_aborted == 0
    assert len([u async for u in store.list_multipart_uploads()]) == 1
    aborted = await sweep(pool, store, uploads=DAY)
    assert aborted.uploads_aborted == 1
    assert [u async for u in store.list_multipart_uploads()] == []


async def test_while_another_replica_sweeps_this_one_skips(
    database_url: str, pool: AsyncConnectionPool[Any], store: ObjectStore
) -> None:
    ws = uuid.uuid4()
    orphans = await put_document_objects(store, ws, uuid.uuid4())
    # Another replica mid-sweep holds the transaction-scoped lock.
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (SWEEP_LOCK_KEY,))
        skipped = await sweep_once(pool, store, min_object_age_seconds=0, max_upload_age_seconds=0)
        assert skipped is None
        assert await keys_of(store) == set(orphans)
        other.rollback()  # that replica's sweep ends
    result = await sweep(pool, store)
    assert result.objects_deleted == len(orphans)
    assert await keys_of(store) == set()


def test_a_rounds_figures_reach_the_sweepers_metrics() -> None:
    def seen(result: str) -> float:
        return ORPHAN_SWEEP_OBJECTS.labels(result=result)._value.get()

    before = {r: seen(r) for r in ("deleted", "too_young", "unrecognised", "kept")}
    aborted = STALE_UPLOADS_ABORTED._value.get()
    count_sweep(
        SweepResult(
            objects_seen=10, objects_deleted=3, objects_too_young=2, objects_unrecognised=1, uploads_aborted=4
        )
    )
    assert {r: seen(r) - n for r, n in before.items()} == {
        "deleted": 3,
        "too_young": 2,
        "unrecognised": 1,
        "kept": 4,
    }
    assert STALE_UPLOADS_ABORTED._value.get() - aborted == 4
