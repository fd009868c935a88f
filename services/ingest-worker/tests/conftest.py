"""What the parse worker leaves behind, set up without it: a parsed document and its ingest job.

The text goes where the parse worker writes it (`rag_core.storage_keys.parsed_key`) and the job
enters the queue the one way every producer uses (`rag_core.queues.queue_document_job`, which
rings ingest_jobs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg import AsyncConnection

from rag_core.queues import INGEST_QUEUE, queue_document_job
from rag_core.storage_keys import parsed_key
from rag_devstack.s3 import s3_client

DEFAULT_MAX_ATTEMPTS = 5  # the ingest_jobs column's default


@dataclass
class ParsedDocument:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    document_id: uuid.UUID
    job_id: uuid.UUID


async def insert_parsed_document(dsn: str, env: dict[str, str], text: str) -> ParsedDocument:
    """A parsed document of a new workspace, its text in S3, its ingest job queued."""
    user, ws, doc = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    key = parsed_key(ws, doc)
    s3_client(env).put_object(Bucket=env["S3_BUCKET"], Key=key, Body=text.encode())
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn, conn.transaction():
        await conn.execute("INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)", (ws, user))
        await conn.execute("INSERT INTO workspace_members VALUES (%s, %s, 'owner')", (ws, user))
        await conn.execute(
            "INSERT INTO documents (id, workspace_id, filename, content_type, size_bytes, sha256, status)"
            " VALUES (%s, %s, 'doc.txt', 'text/plain', %s, %s, 'parsed')",
            (doc, ws, len(text), uuid.uuid4().hex * 2),
        )
        await conn.execute(
            "INSERT INTO files (document_id, kind, bucket, object_key, size_bytes, content_type)"
            " VALUES (%s, 'parsed', %s, %s, %s, 'text/plain')",
            (doc, env["S3_BUCKET"], key, len(text)),
        )
        job = await queue_document_job(conn, INGEST_QUEUE, doc, ws, DEFAULT_MAX_ATTEMPTS)
    return ParsedDocument(ws, user, doc, job.id)
