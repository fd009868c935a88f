"""Documents: list (newest first, cursor pages, status filter), get, jobs, reprocess, delete.

A document of a workspace the caller is not a member of answers 404, like a missing one.
"""

from __future__ import annotations

from typing import Any, get_args
from uuid import UUID

import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import Response

from rag_api.access import require_member
from rag_api.deps import pool_of, require_user, settings_of, store_of
from rag_api.errors import ApiError, not_found
from rag_api.params import choice_param, int_param, text_param
from rag_api.responses import json_response
from rag_api.shapes import DOCUMENT_COLUMNS, JOB_COLUMNS, decode_cursor, encode_cursor, job_out, row_out
from rag_core.document_jobs import job_event
from rag_core.events import DocumentDeleted, DocumentStatus, DocumentStatusUpdated, Event
from rag_core.queues import PARSE_QUEUE, queue_document_job
from rag_core.storage_keys import original_key
from rag_eventbus import publish
from rag_storage import StorageError

log = structlog.get_logger("rag_api.documents")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
STATUSES: tuple[str, ...] = get_args(DocumentStatus)

# Membership is part of the lookup: a stranger's query finds nothing, as for a missing id.
SELECT_DOCUMENT = f"""
SELECT {DOCUMENT_COLUMNS} FROM documents d
WHERE d.id = %(id)s
  AND EXISTS (SELECT 1 FROM workspace_members m WHERE m.workspace_id = d.workspace_id AND m.user_id = %(user)s)
"""
SELECT_DOCUMENT_FOR_UPDATE = SELECT_DOCUMENT + " FOR UPDATE"

LIST_DOCUMENTS = f"""
SELECT {DOCUMENT_COLUMNS} FROM documents
WHERE workspace_id = %(workspace)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(before_at)s::timestamptz IS NULL OR (created_at, id) < (%(before_at)s, %(before_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""

SELECT_JOBS = f"""
SELECT 'parse' AS job_type, {JOB_COLUMNS} FROM parse_jobs WHERE document_id = %(id)s
UNION ALL
SELECT 'ingest' AS job_type, {JOB_COLUMNS} FROM ingest_jobs WHERE document_id = %(id)s
ORDER BY created_at, job_type DESC, id
"""

ACTIVE_JOBS = """
SELECT EXISTS (SELECT 1 FROM parse_jobs WHERE document_id = %(id)s AND status IN ('queued', 'running'))
    OR EXISTS (SELECT 1 FROM ingest_jobs WHERE document_id = %(id)s AND status IN ('queued', 'running'))
"""

REQUEUE_DOCUMENT = f"""
UPDATE documents SET status = 'queued', error = NULL, updated_at = now() WHERE id = %s
RETURNING {DOCUMENT_COLUMNS}
"""

SELECT_OBJECT_KEYS = "SELECT object_key FROM files WHERE document_id = %s"
DELETE_DOCUMENT = "DELETE FROM documents WHERE id = %s"  # files, chunks and jobs cascade


async def _load(conn: AsyncConnection[Any], document_id: UUID, user_id: UUID, *, lock: bool = False) -> Any:
    structlog.contextvars.bind_contextvars(document_id=str(document_id))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        SELECT_DOCUMENT_FOR_UPDATE if lock else SELECT_DOCUMENT, {"id": document_id, "user": user_id}
    )
    row = await cur.fetchone()
    if row is None:
        raise not_found("document")
    structlog.contextvars.bind_contextvars(workspace_id=str(row["workspace_id"]))
    return row


def _limit(request: Request) -> int:
    return int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


def _status(request: Request) -> str | None:
    return choice_param(request, "status", STATUSES)


async def list_documents(request: Request) -> Response:
    user_id = require_user(request)
    workspace_id: UUID = request.path_params["workspace_id"]
    limit, status = _limit(request), _status(request)
    cursor = text_param(request, "cursor")
    before_at, before_id = decode_cursor(cursor) if cursor else (None, None)
    async with pool_of(request).connection() as conn:
        await require_member(conn, workspace_id, user_id)
        cur = conn.cursor(row_factory=dict_row)
        params = {
            "workspace": workspace_id,
            "status": status,
            "before_at": before_at,
            "before_id": before_id,
            "limit": limit + 1,
        }
        await cur.execute(LIST_DOCUMENTS, params)
        rows = await cur.fetchall()
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if len(rows) > limit else None
    return json_response({"items": [row_out(r) for r in page], "next_cursor": next_cursor})


async def get_document(request: Request) -> Response:
    user_id = require_user(request)
    async with pool_of(request).connection() as conn:
        row = await _load(conn, request.path_params["document_id"], user_id)
    return json_response(row_out(row))


async def document_jobs(request: Request) -> Response:
    user_id = require_user(request)
    async with pool_of(request).connection() as conn:
        row = await _load(conn, request.path_params["document_id"], user_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(SELECT_JOBS, {"id": row["id"]})
        jobs = await cur.fetchall()
    return json_response({"items": [job_out(j) for j in jobs]})


async def reprocess_document(request: Request) -> Response:
    """Queue a new parse job; 409 while a parse or ingest job of the document is still active."""
    user_id = require_user(request)
    max_attempts = settings_of(request).job_max_attempts
    async with pool_of(request).connection() as conn, conn.transaction():
        doc = await _load(conn, request.path_params["document_id"], user_id, lock=True)
        cur = await conn.execute(ACTIVE_JOBS, {"id": doc["id"]})
        active = await cur.fetchone()
        if active is not None and active[0]:
            raise ApiError(409, "job_in_progress", "The document already has a queued or running job.")
        job = await queue_document_job(conn, PARSE_QUEUE, doc["id"], doc["workspace_id"], max_attempts)
        dcur = conn.cursor(row_factory=dict_row)
        await dcur.execute(REQUEUE_DOCUMENT, (doc["id"],))
        doc = await dcur.fetchone()
        assert doc is not None
        status_event = DocumentStatusUpdated(
            document_id=doc["id"], workspace_id=doc["workspace_id"], status="queued", error=None
        )
        await publish(conn, [Event.of(status_event), job_event(job, "parse")])
    log.info("document_reprocess_queued", parse_job_id=str(job.id))
    return json_response(row_out(doc, parse_job_id=job.id), status=202)


async def delete_document(request: Request) -> Response:
    """Delete rows (jobs and chunks cascade) and publish, in one transaction; then the objects."""
    user_id = require_user(request)
    async with pool_of(request).connection() as conn, conn.transaction():
        doc = await _load(conn, request.path_params["document_id"], user_id, lock=True)
        cur = await conn.execute(SELECT_OBJECT_KEYS, (doc["id"],))
        keys = {r[0] for r in await cur.fetchall()} | {original_key(doc["workspace_id"], doc["id"])}
        await conn.execute(DELETE_DOCUMENT, (doc["id"],))
        event = DocumentDeleted(document_id=doc["id"], workspace_id=doc["workspace_id"])
        await publish(conn, [Event.of(event)])
    # After commit: a failure here leaves objects without rows (logged), never rows without objects.
    try:
        await store_of(request).delete(sorted(keys))
    except StorageError as exc:
        log.warning("document_objects_not_deleted", keys=sorted(keys), error=str(exc))
    log.info("document_deleted")
    return Response(status_code=204)
