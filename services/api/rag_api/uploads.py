"""POST /api/workspaces/{id}/documents/upload: multipart, one or more `files` parts.

1. Auth, one of the user's MAX_CONCURRENT_UPLOADS_PER_USER slots of this process (429
   `too_many_uploads` otherwise) and membership, before a byte of the body is used.
2. The body is parsed as a stream; each `files` part is hashed, sniffed and streamed to
   S3 (intake.py). Nothing is written to the database while the body is read: if the
   multipart turns out malformed, or a part beyond MAX_UPLOAD_FILES starts (413
   `too_many_files`), every stored object is deleted and nothing remains.
3. One transaction per stored file: a live document with the same sha256 in the
   workspace makes it a duplicate (no new row, no job, the new object is deleted);
   otherwise document + file + parse job + events + NOTIFY parse_jobs. If that
   transaction fails, the object is deleted: S3 never keeps an object without a row.
   The duplicate is looked up FOR KEY SHARE: a concurrent delete (which holds the row
   FOR UPDATE) is waited for, and a document that is going away is never answered as
   the duplicate; the file becomes a new document instead.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import Response

from rag_api.access import require_member
from rag_api.deps import pool_of, require_user, settings_of, store_of
from rag_api.errors import ApiError
from rag_api.intake import FileIntake, Received, Refusal
from rag_api.limits import too_many_files
from rag_api.metrics import UPLOAD_BYTES
from rag_api.multipart import InvalidMultipart, PartData, PartEnd, PartStart, boundary_of, iter_parts
from rag_api.responses import json_response
from rag_api.shapes import DOCUMENT_COLUMNS, row_out
from rag_api.user_slots import UserSlots
from rag_core.document_jobs import job_event
from rag_core.events import DocumentCreated, Event
from rag_core.queues import PARSE_QUEUE, queue_document_job
from rag_eventbus import publish

log = structlog.get_logger("rag_api.uploads")

FILES_FIELD = "files"

SELECT_BY_SHA256 = f"""
SELECT {DOCUMENT_COLUMNS},
       (SELECT j.id FROM parse_jobs j WHERE j.document_id = d.id ORDER BY j.created_at DESC LIMIT 1)
           AS parse_job_id
FROM documents d WHERE d.workspace_id = %s AND d.sha256 = %s
FOR KEY SHARE OF d
"""
INSERT_DOCUMENT = f"""
INSERT INTO documents (id, workspace_id, filename, content_type, size_bytes, sha256, status)
VALUES (%(id)s, %(workspace_id)s, %(filename)s, %(content_type)s, %(size)s, %(sha256)s, 'queued')
RETURNING {DOCUMENT_COLUMNS}
"""
INSERT_FILE = """
INSERT INTO files (document_id, kind, bucket, object_key, size_bytes, content_type)
VALUES (%(id)s, 'original', %(bucket)s, %(key)s, %(size)s, %(content_type)s)
"""


async def upload_documents(request: Request) -> Response:
    user_id = require_user(request)
    slots: UserSlots = request.app.state.upload_slots
    with slots.hold(user_id):  # 429 too_many_uploads before the body is read
        return await _upload(request, user_id)


async def _upload(request: Request, user_id: UUID) -> Response:
    workspace_id: UUID = request.path_params["workspace_id"]
    async with pool_of(request).connection() as conn:
        await require_member(conn, workspace_id, user_id)
    try:
        boundary = boundary_of(request.headers.get("content-type"))
    except InvalidMultipart as exc:
        raise ApiError(400, "invalid_multipart", str(exc)) from None

    outcomes = await _receive(request, workspace_id, boundary)
    if not outcomes:
        raise ApiError(400, "no_files", f"The request has no '{FILES_FIELD}' file part.")

    settings = settings_of(request)
    documents: list[dict[str, Any]] = []
    refusals: list[Refusal] = []
    for index, outcome in enumerate(outcomes):
        result: dict[str, Any] | Refusal = outcome if isinstance(outcome, Refusal) else {}
        if isinstance(outcome, Received):
            try:
                result = await _register(
                    pool_of(request), settings.s3_bucket, workspace_id, outcome, settings.job_max_attempts
                )
            except BaseException:
                await _discard(outcomes[index + 1 :], None)
                raise
        if isinstance(result, Refusal):
            log.info("upload_refused", filename=result.filename, code=result.code)
            refusals.append(result)
        else:
            documents.append(result)

    errors = [r.item() for r in refusals]
    if documents:
        return json_response({"documents": documents, "errors": errors}, status=201)
    return json_response({"error": errors[0], "errors": errors}, status=refusals[0].status)


async def _receive(request: Request, workspace_id: UUID, boundary: bytes) -> list[Received | Refusal]:
    """Stream every `files` part to S3; other fields are read and ignored.

    The file part after the MAX_UPLOAD_FILES-th is refused as it starts (413), with
    every object of the request deleted: the request stores all of its files or none.
    """
    settings = settings_of(request)
    store, max_bytes, max_files = store_of(request), settings.max_upload_bytes, settings.max_upload_files
    outcomes: list[Received | Refusal] = []
    current: FileIntake | None = None
    file_parts = 0
    try:
        async for event in iter_parts(boundary, request.stream()):
            if isinstance(event, PartStart):
                is_file = event.name == FILES_FIELD and event.filename is not None
                file_parts += is_file
                if file_parts > max_files:
                    log.info("upload_refused_too_many_files", limit=max_files)
                    raise too_many_files(max_files)
                current = (
                    FileIntake(store, workspace_id, event.filename or "", max_bytes) if is_file else None
                )
            elif isinstance(event, PartData):
                if current is not None:
                    await current.feed(event.data)
            elif isinstance(event, PartEnd) and current is not None:
                outcomes.append(await current.finish())
                current = None
    except InvalidMultipart as exc:
        await _discard(outcomes, current)
        raise ApiError(400, "invalid_multipart", str(exc)) from None
    except BaseException:
        await _discard(outcomes, current)
        raise
    return outcomes  # an epilogue after the closing boundary is drained by the middleware


async def _discard(outcomes: list[Received | Refusal], current: FileIntake | None) -> None:
    if current is not None:
        await current.abort()
    for outcome in outcomes:
        if isinstance(outcome, Received):
            await outcome.writer.abort()


async def _register(
    pool: AsyncConnectionPool[Any], bucket: str, workspace_id: UUID, file: Received, max_attempts: int
) -> dict[str, Any] | Refusal:
    """Insert the document (or find its duplicate); on any failure delete the object."""
    try:
        item = await _insert_or_find(pool, bucket, workspace_id, file, max_attempts)
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("upload_register_failed", key=file.key, error=str(exc))
        await file.writer.abort()
        return Refusal(
            file.filename, 503, "database_unavailable", "The database is unavailable; try again later."
        )
    except BaseException:
        await file.writer.abort()
        raise
    if item["duplicate"]:
        await file.writer.abort()  # the content is already stored under the existing document
        log.info("upload_duplicate", document_id=str(item["id"]))
    else:
        UPLOAD_BYTES.inc(file.size)
        log.info(
            "upload_accepted",
            document_id=str(item["id"]),
            size_bytes=file.size,
            content_type=file.content_type,
        )
    return item


async def _insert_or_find(
    pool: AsyncConnectionPool[Any], bucket: str, workspace_id: UUID, file: Received, max_attempts: int
) -> dict[str, Any]:
    for _ in range(3):
        try:
            async with pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(SELECT_BY_SHA256, (workspace_id, file.sha256))
                existing = await cur.fetchone()
                if existing is not None:
                    return row_out(existing, duplicate=True)
                params = {
                    "id": file.document_id,
                    "workspace_id": workspace_id,
                    "filename": file.filename,
                    "content_type": file.content_type,
                    "size": file.size,
                    "sha256": file.sha256,
                    "bucket": bucket,
                    "key": file.key,
                }
                await cur.execute(INSERT_DOCUMENT, params)
                document = await cur.fetchone()
                assert document is not None
                await conn.execute(INSERT_FILE, params)
                job = await queue_document_job(
                    conn, PARSE_QUEUE, file.document_id, workspace_id, max_attempts
                )
                created = DocumentCreated(
                    document_id=file.document_id,
                    workspace_id=workspace_id,
                    filename=file.filename,
                    status="queued",
                )
                await publish(conn, [Event.of(created), job_event(job, "parse")])
            return row_out(document, parse_job_id=job.id, duplicate=False)
        except psycopg.errors.UniqueViolation:
            continue  # a concurrent upload of the same content won: look again, it is a duplicate
    raise psycopg.errors.UniqueViolation("the same content kept racing with concurrent uploads")
