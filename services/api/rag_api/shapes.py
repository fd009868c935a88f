"""Rows as the contract's JSON shapes (document, job), and the opaque list cursor."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from rag_api.errors import ApiError

DOCUMENT_COLUMNS = (
    "id, workspace_id, filename, content_type, size_bytes, sha256, status, error, "
    "chunk_count, created_at, updated_at"
)
# Both queues share one shape; `error` is the job's last_error.
JOB_COLUMNS = (
    "id, document_id, status, attempt, max_attempts, last_error AS error, run_at, "
    "created_at, started_at, finished_at"
)


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def row_out(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {key: _utc(value) for key, value in row.items()} | extra


def job_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "job_type": row["job_type"],
        "document_id": row["document_id"],
        "status": row["status"],
        "attempt": row["attempt"],
        "max_attempts": row["max_attempts"],
        "error": row["error"],
        "run_at": _utc(row["run_at"]),
        "created_at": _utc(row["created_at"]),
        "started_at": _utc(row["started_at"]),
        "finished_at": _utc(row["finished_at"]),
    }


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = orjson.dumps([created_at.astimezone(UTC).isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = orjson.loads(raw)
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, UUID(row_id)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise ApiError(400, "invalid_parameter", "The 'cursor' parameter is not a valid cursor.") from None
