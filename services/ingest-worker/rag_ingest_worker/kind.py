"""The ingest job: parsed text → chunks → embeddings → rows that search reads.

The work (download, chunk, embed) happens outside any transaction, the chunking in a
child process (rag_ingest_worker.compute: a regex holds the GIL, and the loop must keep
renewing leases and answering probes); then ONE
transaction, fenced by the lease, replaces the document's chunks, marks the job
`success` and the document `ingested`, and publishes the events. Running the same
job twice therefore never duplicates chunks, and a worker that lost its lease
writes nothing. Long documents report `progress` at least every 10 %.

Tracing: the runtime's `ingest job` span holds this run; its steps are child spans
(`s3 get`, `chunk`, `embed`, `COPY chunks`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import structlog
from psycopg_pool import AsyncConnectionPool

from rag_core.document_jobs import DocumentJobKind, job_event, set_document_status
from rag_core.queues import INGEST_QUEUE
from rag_embedding import Embedder, PermanentEmbeddingError, TransientEmbeddingError, vector_literal
from rag_eventbus import publish
from rag_ingest_worker.chunking import Chunk
from rag_ingest_worker.compute import ComputePool
from rag_jobqueue import Job, Lease, PermanentJobError, PublicMessages
from rag_observability.tracing import span
from rag_storage import ObjectNotFound, ObjectStore, ObjectTooLarge, StorageError

log = structlog.get_logger("rag_ingest_worker")

PROGRESS_MIN_CHUNKS = 20

SELECT_PARSED_FILE = "SELECT object_key FROM files WHERE document_id = %s AND kind = 'parsed'"
DELETE_CHUNKS = "DELETE FROM chunks WHERE document_id = %s"
COPY_CHUNKS = (
    "COPY chunks (document_id, workspace_id, ordinal, text, char_start, char_end, page,"
    " embedding_model, embedding_dim, embedding) FROM STDIN"
)
MARK_INGESTED = """
UPDATE documents SET chunk_count = %(count)s, embedding_model = %(model)s, embedding_dim = %(dim)s,
    updated_at = now()
WHERE id = %(id)s
"""


class IngestKind(DocumentJobKind):
    queue = INGEST_QUEUE
    job_type = "ingest"
    working_status = "ingesting"
    # What a user reads for a transient failure (the runtime retries it and adds the job id);
    # the exception's text, which may name the embedding service's URL or quote its answer,
    # is only logged.
    public_errors: ClassVar[PublicMessages] = {
        **DocumentJobKind.public_errors,
        StorageError: "The file storage could not be reached.",
        TransientEmbeddingError: "The embedding service could not be reached.",
    }

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        store: ObjectStore,
        embedder: Embedder,
        compute: ComputePool,
        *,
        batch_size: int = 32,
        max_text_bytes: int = 64 * 1024 * 1024,
        timeout_seconds: float | None = 1800,
    ) -> None:
        self.pool = pool
        self.store = store
        self.embedder = embedder
        self.compute = compute
        self.batch_size = batch_size
        self.max_text_bytes = max_text_bytes
        self.timeout_seconds = timeout_seconds

    async def run(self, job: Job, lease: Lease) -> None:
        document_id = job.row["document_id"]
        text = await self._parsed_text(document_id)
        with span("chunk", attributes={"text.chars": len(text)}) as current:
            chunks = await self.compute.chunk(text)
            current.set_attribute("chunks", len(chunks))
        del text
        with span("embed", attributes={"chunks": len(chunks), "embedding.model": self.embedder.model_name}):
            vectors = await self._embed(job, lease, chunks)
        async with self.pool.connection() as conn, conn.transaction():
            done = await lease.finish(conn)
            await conn.execute(DELETE_CHUNKS, (document_id,))
            with span("COPY chunks", attributes={"db.system": "postgresql", "chunks": len(chunks)}):
                async with conn.cursor() as cur, cur.copy(COPY_CHUNKS) as copy:
                    for chunk, vector in zip(chunks, vectors, strict=True):
                        await copy.write_row(
                            (
                                document_id,
                                job.row["workspace_id"],
                                chunk.ordinal,
                                chunk.text,
                                chunk.char_start,
                                chunk.char_end,
                                chunk.page,
                                self.embedder.model_name,
                                self.embedder.dim,
                                vector,
                            )
                        )
            await conn.execute(
                MARK_INGESTED,
                {
                    "count": len(chunks),
                    "model": self.embedder.model_name,
                    "dim": self.embedder.dim,
                    "id": document_id,
                },
            )
            events = [job_event(done, "ingest"), await set_document_status(conn, done, "ingested")]
            await publish(conn, events)
        log.info("document_ingested", chunks=len(chunks), model=self.embedder.model_name)

    async def _parsed_text(self, document_id: Any) -> str:
        async with self.pool.connection() as conn:
            cur = await conn.execute(SELECT_PARSED_FILE, (document_id,))
            row = await cur.fetchone()
        if row is None:
            raise PermanentJobError("The parsed text of this document is missing; reprocess the document.")
        try:
            with span("s3 get", attributes={"s3.key": row[0]}) as current:
                data = await self.store.get_bytes(row[0], max_bytes=self.max_text_bytes)
                current.set_attribute("s3.bytes", len(data))
        except ObjectNotFound:
            raise PermanentJobError(
                "The parsed text of this document is missing; reprocess the document."
            ) from None
        except ObjectTooLarge:
            raise PermanentJobError(
                f"The extracted text is larger than the {self.max_text_bytes // (1024 * 1024)} MB limit."
            ) from None
        return data.decode("utf-8")

    async def _embed(self, job: Job, lease: Lease, chunks: list[Chunk]) -> list[str]:
        """Embed in batches of at most a tenth of the document, reporting progress after each.

        Documents of fewer than PROGRESS_MIN_CHUNKS chunks finish in a blink: no progress.
        """
        total = len(chunks)
        step = self.batch_size
        if total >= PROGRESS_MIN_CHUNKS:
            step = max(1, min(self.batch_size, math.ceil(total / 10)))
        literals: list[str] = []
        for start in range(0, total, step):
            batch = chunks[start : start + step]
            try:
                vectors = await self.embedder.embed([c.embedding_text for c in batch])
            except PermanentEmbeddingError as exc:
                raise PermanentJobError(f"The embedding service refused the text: {exc}") from None
            literals.extend(vector_literal(v) for v in vectors)
            if step < total and len(literals) < total:
                await self._report_progress(job, lease, len(literals), total)
        return literals

    async def _report_progress(self, job: Job, lease: Lease, done: int, total: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await lease.check(conn)
            await publish(conn, [job_event(job, "ingest", progress={"done": done, "total": total})])
