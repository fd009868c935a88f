from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg


def make_workspace(dsn: str, members: Sequence[UUID]) -> UUID:
    """A workspace whose first member is the owner."""
    workspace_id = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)", (workspace_id, members[0])
        )
        for i, user_id in enumerate(members):
            conn.execute(
                "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
                (workspace_id, user_id, "owner" if i == 0 else "member"),
            )
    return workspace_id


def user_event_ids(dsn: str, user_id: UUID) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM events WHERE user_id=%s ORDER BY id", (user_id,))]


def deleted_payload(workspace_id: UUID, **extra: Any) -> dict[str, Any]:
    return {"workspace_id": str(workspace_id), "document_id": str(uuid.uuid4()), **extra}
