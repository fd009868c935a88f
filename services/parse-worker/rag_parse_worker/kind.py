"""The parse job: original in S3 -> text -> parsed text in S3 -> document parsed + an ingest job.

The runtime (rag_jobqueue) claims the job and publishes `running` + document `parsing`
(DocumentJobKind.claim_effects, in the claim's own statement); retries, failures and releases are its business too. This
kind does the work and the completing transaction, which holds, all or nothing:

    parse job success (fenced by lease.finish), document parsed (+ page_count),
    the `parsed` files row (upserted), the ingest job (queued), the events
    [job success, document parsed, ingest job queued], NOTIFY ingest_jobs.

Failures: object storage errors and database errors are transient (retried with
backoff by the runtime); content that cannot be read raises PermanentJobError with a
message for the user, which fails the job at once and puts the document in `error`.
What users read is always one of our sentences (`public_errors`, the extractors'
messages) plus the job id; exception texts go to the log only.

Idempotence: a second run of the same job (a takeover after a lost lease) cannot
complete it twice because `lease.finish` is fenced; on top of that, when an ingest job
for the document is already queued (not started), it is reused rather than doubled: it
will read the same, newest parsed text when it runs.

Tracing: the runtime's `parse job` span holds this run; its steps are child spans
(`s3 get`, `extract`, `s3 put`), and the ingest job queued here continues the trace.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from rag_core.document_jobs import DocumentJobKind, job_event, set_document_status
from rag_core.queues import INGEST_QUEUE, PARSE_QUEUE, queue_document_job
from rag_core.storage_keys import parsed_key
from rag_eventbus import publish
from rag_jobqueue import Job, Lease, PermanentJobError, PublicMessages
from rag_observability.tracing import span
from rag_parse_worker import metrics
from rag_parse_worker.extract import ExtractionError, detect_format
from rag_parse_worker.isolation import ExtractionPool, ExtractorFailure
from rag_parse_worker.settings import ParseWorkerSettings
from rag_storage import ObjectNotFound, ObjectStore, ObjectTooLarge, StorageError

log = structlog.get_logger("rag_parse_worker")

PARSED_CONTENT_TYPE = "text/plain; charset=utf-8"

SELECT_SOURCE = """
SELECT d.filename, d.content_type, d.size_bytes, f.object_key
FROM documents d LEFT JOIN files f ON f.document_id = d.id AND f.kind = 'original'
WHERE d.id = %(document_id)s
"""

MARK_PARSED = """
UPDATE documents SET page_count = %(page_count)s WHERE id = %(document_id)s
"""

UPSERT_PARSED_FILE = """
INSERT INTO files (document_id, kind, bucket, object_key, size_bytes, content_type)
VALUES (%(document_id)s, 'parsed', %(bucket)s, %(key)s, %(size)s, %(content_type)s)
ON CONFLICT (document_id, kind) DO UPDATE
SET bucket = excluded.bucket, object_key = excluded.object_key, size_bytes = excluded.size_bytes,
    content_type = excluded.content_type, created_at = now()
"""

# A queued ingest job that has not started yet will read the newest parsed text: reuse it.
SELECT_WAITING_INGEST = """
SELECT * FROM ingest_jobs WHERE document_id = %(document_id)s AND status = 'queued'
ORDER BY created_at LIMIT 1 FOR UPDATE
"""


def _format_of(data: bytes, filename: str, content_type: str) -> str:
    try:
        return detect_format(data, filename, content_type)
    except ExtractionError:
        return "unknown"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


class ParseKind(DocumentJobKind):
    queue = PARSE_QUEUE
    job_type = "parse"
    working_status = "parsing"

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        store: ObjectStore,
        extractor: ExtractionPool,
        settings: ParseWorkerSettings,
    ) -> None:
        self.pool = pool
        self.store = store
        self.extractor = extractor
        self.settings = settings
        # A backstop for a job stuck in I/O (the extraction has its own timeout, and S3
        # and Postgres have their own): the runtime fails the job when it passes.
        self.timeout_seconds = settings.job_timeout_seconds(extractor.ocr)

    async def run(self, job: Job, lease: Lease) -> None:
        document_id: UUID = job.row["document_id"]
        workspace_id: UUID = job.row["workspace_id"]
        source = await self._source(document_id)
        if source is None:
            raise PermanentJobError("The document has no uploaded file to read.")
        filename, content_type, size_bytes, object_key = source
        too_large = (
            f"The file is larger than the {_mb(self.settings.max_upload_bytes)} limit and was not read."
        )
        if size_bytes > self.settings.max_upload_bytes:
            raise PermanentJobError(too_large)
        try:
            with span("s3 get", attributes={"s3.key": object_key}) as current:
                data = await self.store.get_bytes(object_key, max_bytes=self.settings.max_upload_bytes)
                current.set_attribute("s3.bytes", len(data))
        except ObjectNotFound:
            raise PermanentJobError("The uploaded file could not be found in storage.") from None
        except ObjectTooLarge:  # the stored object is larger than its row says: no retry helps
            raise PermanentJobError(too_large) from None
        metrics.BYTES.labels(direction="in").inc(len(data))

        try:
            with span("extract", attributes={"document.content_type": content_type}) as current:
                timed = await self.extractor.extract(data, filename, content_type)
                current.set_attribute("extract.format", timed.result.format)
        except ExtractionError as exc:
            metrics.DOCUMENTS.labels(format=_format_of(data, filename, content_type), outcome=exc.code).inc()
            log.info("extraction_failed", code=exc.code, reason=exc.message)
            raise PermanentJobError(exc.message) from None
        del data
        extracted = timed.result
        metrics.EXTRACT_SECONDS.labels(format=extracted.format).observe(timed.seconds)
        if extracted.page_count:
            metrics.PAGES.inc(extracted.page_count)

        body = extracted.text.encode("utf-8")
        key = parsed_key(workspace_id, document_id)
        # Written before the transaction: if the transaction then fails, the object is
        # overwritten by the retry; if it succeeds, the object is there for the ingest job.
        with span("s3 put", attributes={"s3.key": key, "s3.bytes": len(body)}):
            await self.store.put_bytes(key, body, PARSED_CONTENT_TYPE)
        metrics.BYTES.labels(direction="out").inc(len(body))

        async with self.pool.connection() as conn, conn.transaction():
            done = await lease.finish(conn)  # LeaseLost: taken over; nothing here commits
            events = [job_event(done, "parse")]
            events.append(await set_document_status(conn, done, "parsed"))
            await conn.execute(MARK_PARSED, {"page_count": extracted.page_count, "document_id": document_id})
            await conn.execute(
                UPSERT_PARSED_FILE,
                {
                    "document_id": document_id,
                    "bucket": self.store.bucket,
                    "key": key,
                    "size": len(body),
                    "content_type": PARSED_CONTENT_TYPE,
                },
            )
            ingest = await self._ingest_job(conn, document_id, workspace_id)
            events.append(job_event(ingest, "ingest"))
            await publish(conn, events)
        metrics.DOCUMENTS.labels(format=extracted.format, outcome="parsed").inc()
        log.info(
            "document_parsed",
            format=extracted.format,
            chars=len(extracted.text),
            pages=extracted.page_count,
            extract_seconds=round(timed.seconds, 4),
            ingest_job_id=str(ingest.id),
        )

    async def _source(self, document_id: UUID) -> tuple[str, str, int, str] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(SELECT_SOURCE, {"document_id": document_id})
            row = await cur.fetchone()
        if row is None or row[3] is None:
            return None
        return str(row[0]), str(row[1]), int(row[2]), str(row[3])

    async def _ingest_job(self, conn: Any, document_id: UUID, workspace_id: UUID) -> Job:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(SELECT_WAITING_INGEST, {"document_id": document_id})
            row = await cur.fetchone()
        if row is not None:
            return Job.from_row(row)
        return await queue_document_job(
            conn, INGEST_QUEUE, document_id, workspace_id, self.settings.job_max_attempts
        )

    # What a user reads for a transient failure (the runtime retries it and adds the job id);
    # the exception's own text, which may name hosts or quote S3's answer, is only logged.
    public_errors: ClassVar[PublicMessages] = {
        **DocumentJobKind.public_errors,
        StorageError: "The file storage could not be reached.",
        psycopg.Error: "The database could not be reached.",
        OSError: "The database could not be reached.",
        ExtractorFailure: "The text extractor failed unexpectedly on this file.",
    }
