from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from rag_devstack.s3 import s3_client


@dataclass
class ParsedDocument:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    document_id: uuid.UUID
    job_id: uuid.UUID


def insert_parsed_document(
    dsn: str, env: dict[str, str], text: str, *, notify: bool = True
) -> ParsedDocument:
    """What the parse worker leaves behind: a parsed document, its text in S3, a queued ingest job."""
    user, ws, doc = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    key = f"workspaces/{ws}/documents/{doc}/parsed.txt"
    s3_client(env).put_object(Bucket=env["S3_BUCKET"], Key=key, Body=text.encode())
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)", (ws, user))
        conn.execute("INSERT INTO workspace_members VALUES (%s, %s, 'owner')", (ws, user))
        conn.execute(
            "INSERT INTO documents (id, workspace_id, filename, content_type, size_bytes, sha256, status)"
            " VALUES (%s, %s, 'doc.txt', 'text/plain', %s, %s, 'parsed')",
            (doc, ws, len(text), uuid.uuid4().hex * 2),
        )
        conn.execute(
            "INSERT INTO files (document_id, kind, bucket, object_key, size_bytes, content_type)"
            " VALUES (%s, 'parsed', %s, %s, %s, 'text/plain')",
            (doc, env["S3_BUCKET"], key, len(text)),
        )
        row = conn.execute(
            "INSERT INTO ingest_jobs (document_id, workspace_id) VALUES (%s, %s) RETURNING id", (doc, ws)
        ).fetchone()
        assert row is not None
        if notify:
            conn.execute("SELECT pg_notify('ingest_jobs', %s)", (str(row[0]),))
    return ParsedDocument(ws, user, doc, row[0])
