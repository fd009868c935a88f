"""Rows that tests need before the api is involved: a workspace and its members."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from uuid import UUID

import psycopg


def make_workspace(dsn: str, members: Sequence[UUID]) -> UUID:
    """A workspace whose first member is the owner and the others members."""
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
