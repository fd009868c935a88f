"""The orphan sweeper: S3 objects that belong to no live document, and stale multipart uploads.

Objects are orphaned when a document is deleted while its parse runs (the parse worker
writes `parsed.txt` after the delete committed), when a process dies between its S3
write and its commit, or when the best-effort delete after a document's deletion fails.
Nothing else ever removes them, so every api replica runs this loop, every
ORPHAN_SWEEP_INTERVAL_SECONDS (jittered); `pg_try_advisory_xact_lock` lets one replica
sweep at a time and the others skip that round (as the event retention does).

The rule: an object under `workspaces/{workspace_id}/documents/{document_id}/` is deleted
when no `documents` row has that id AND it is older than ORPHAN_MIN_AGE_SECONDS (S3's
LastModified). The age is the safety margin: every writer stores the object first and
commits the document's row after it, so a young object without a row may be an upload or
a parse that is about to commit, and is never touched. The rows are looked up after the
page of keys was listed, in one query per page, each with a fresh snapshot: a document
that committed before the check is seen. Keys of any other shape are left alone (and
logged): they are not ours to judge. Multipart uploads under `workspaces/` begun more
than MULTIPART_MAX_AGE_SECONDS ago are aborted (their parts are billed, never visible).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from psycopg_pool import AsyncConnectionPool

from rag_api.locks import SWEEP_LOCK_KEY, try_replica_lock
from rag_api.metrics import ORPHAN_SWEEP_OBJECTS, STALE_UPLOADS_ABORTED
from rag_api.periodic import run_periodically
from rag_api.settings import ApiSettings
from rag_storage import ObjectStore, StoredObject

log = structlog.get_logger("rag_api.sweeper")

SWEPT_PREFIX = "workspaces/"
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
DOCUMENT_KEY = re.compile(rf"^workspaces/(?P<workspace>{_UUID})/documents/(?P<document>{_UUID})/")

LIVE_DOCUMENTS = "SELECT id FROM documents WHERE id = ANY(%s)"


@dataclass
class SweepResult:
    objects_seen: int = 0
    objects_deleted: int = 0
    objects_too_young: int = 0
    objects_unrecognised: int = 0
    uploads_aborted: int = 0


def document_id_of(key: str) -> UUID | None:
    """The document a key belongs to, or None for a key that is not a document's object."""
    found = DOCUMENT_KEY.match(key)
    return UUID(found.group("document")) if found else None


async def sweep_once(
    pool: AsyncConnectionPool[Any],
    store: ObjectStore,
    *,
    min_object_age_seconds: float,
    max_upload_age_seconds: float,
) -> SweepResult | None:
    """Sweep if no other replica is sweeping: what was done, or None if skipped.

    The advisory lock is held by one transaction for the whole sweep (one pooled
    connection); the documents lookups run on it, each statement with its own snapshot.
    """
    async with pool.connection() as conn, conn.transaction():
        if not await try_replica_lock(conn, SWEEP_LOCK_KEY):
            return None
        result = SweepResult()
        object_cutoff = datetime.now(UTC) - timedelta(seconds=min_object_age_seconds)
        async for page in store.list_objects(SWEPT_PREFIX):
            result.objects_seen += len(page)
            old = _old_enough(page, object_cutoff, result)
            owners = {key: doc for key in old if (doc := document_id_of(key)) is not None}
            for key in old.keys() - owners.keys():
                result.objects_unrecognised += 1
                log.info("orphan_sweep_unrecognised_key", key=key)
            if not owners:
                continue
            cur = await conn.execute(LIVE_DOCUMENTS, (sorted(set(owners.values())),))
            live = {r[0] for r in await cur.fetchall()}
            orphans = sorted(key for key, doc in owners.items() if doc not in live)
            if orphans:
                await store.delete(orphans)
                result.objects_deleted += len(orphans)
                log.info("orphans_deleted", keys=orphans)
        upload_cutoff = datetime.now(UTC) - timedelta(seconds=max_upload_age_seconds)
        async for upload in store.list_multipart_uploads(SWEPT_PREFIX):
            if upload.initiated <= upload_cutoff:
                await store.abort_multipart_upload(upload.key, upload.upload_id)
                result.uploads_aborted += 1
                log.info("stale_upload_aborted", key=upload.key, initiated=upload.initiated.isoformat())
        return result


def count_sweep(result: SweepResult) -> None:
    """The round's figures into the sweeper's metrics (rag_api.metrics)."""
    kept = (
        result.objects_seen - result.objects_deleted - result.objects_too_young - result.objects_unrecognised
    )
    for label, n in (
        ("deleted", result.objects_deleted),
        ("too_young", result.objects_too_young),
        ("unrecognised", result.objects_unrecognised),
        ("kept", max(0, kept)),
    ):
        ORPHAN_SWEEP_OBJECTS.labels(result=label).inc(n)
    STALE_UPLOADS_ABORTED.inc(result.uploads_aborted)


def _old_enough(page: list[StoredObject], cutoff: datetime, result: SweepResult) -> dict[str, StoredObject]:
    old = {o.key: o for o in page if o.last_modified <= cutoff}
    result.objects_too_young += len(page) - len(old)
    return old


async def run_sweeper(
    pool: AsyncConnectionPool[Any],
    store: ObjectStore,
    *,
    interval: float,
    min_object_age_seconds: float,
    max_upload_age_seconds: float,
) -> None:
    """Sweep every `interval` seconds (rag_api.periodic) until cancelled."""

    async def sweep_round() -> bool:
        result = await sweep_once(
            pool,
            store,
            min_object_age_seconds=min_object_age_seconds,
            max_upload_age_seconds=max_upload_age_seconds,
        )
        if result is None:
            log.debug("orphan_sweep_skipped", reason="another replica holds the lock")
            return False
        log.info("orphan_sweep_done", **vars(result))
        count_sweep(result)
        return True

    await run_periodically("orphan_sweep", interval, sweep_round)


async def run_sweeper_of(pool: AsyncConnectionPool[Any], store: ObjectStore, settings: ApiSettings) -> None:
    """The api's sweeper loop, configured from its settings (started by the app's lifespan)."""
    await run_sweeper(
        pool,
        store,
        interval=settings.orphan_sweep_interval_seconds,
        min_object_age_seconds=settings.orphan_min_age_seconds,
        max_upload_age_seconds=settings.multipart_max_age_seconds,
    )
