from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg


def user_event_ids(dsn: str, user_id: UUID) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM events WHERE user_id=%s ORDER BY id", (user_id,))]


def deleted_payload(workspace_id: UUID, **extra: Any) -> dict[str, Any]:
    return {"workspace_id": str(workspace_id), "document_id": str(uuid.uuid4()), **extra}
