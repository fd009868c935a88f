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


MAX_CURSOR_CHARS = 256  # an encoded cursor is about 100; anything longer is not ours


def _invalid_cursor() -> ApiError:
    return ApiError(400, "invalid_cursor", "The 'cursor' parameter is not a cursor this api returned.")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (created_at, id) of a cursor from `encode_cursor`; 400 `invalid_cursor` otherwise.

    The cursor comes from the client: every shape it can decode to (an object, a list
    of three, a number, a naive or out-of-range timestamp) is refused here, before it
    reaches a query.
    """
    if len(cursor) > MAX_CURSOR_CHARS:
        raise _invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _invalid_cursor() from None
    if not (isinstance(decoded, list) and len(decoded) == 2 and all(isinstance(v, str) for v in decoded)):
        raise _invalid_cursor()
    try:
        when = datetime.fromisoformat(decoded[0])
        row_id = UUID(decoded[1])
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        # Normalised to UTC so that an offset cannot push it outside the years 1..9999.
        return when.astimezone(UTC), row_id
    except (ValueError, OverflowError):
        raise _invalid_cursor() from None
