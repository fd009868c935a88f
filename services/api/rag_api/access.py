"""Workspace membership: every /api route checks it; a stranger sees 404, never 403."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import structlog
from psycopg import AsyncConnection

from rag_api.errors import ApiError, not_found

Role = Literal["owner", "member"]

SELECT_ROLE = "SELECT role FROM workspace_members WHERE workspace_id = %s AND user_id = %s"


async def role_of(conn: AsyncConnection[Any], workspace_id: UUID, user_id: UUID) -> Role | None:
    cur = await conn.execute(SELECT_ROLE, (workspace_id, user_id))
    row = await cur.fetchone()
    return None if row is None else row[0]  # type: ignore[no-any-return]


async def require_member(conn: AsyncConnection[Any], workspace_id: UUID, user_id: UUID) -> Role:
    """The caller's role in the workspace; 404 when not a member (existence is not revealed)."""
    structlog.contextvars.bind_contextvars(workspace_id=str(workspace_id))
    role = await role_of(conn, workspace_id, user_id)
    if role is None:
        raise not_found("workspace")
    return role


async def require_owner(conn: AsyncConnection[Any], workspace_id: UUID, user_id: UUID) -> None:
    """404 for a stranger, 403 for a member who is not an owner."""
    if await require_member(conn, workspace_id, user_id) != "owner":
        raise ApiError(403, "forbidden", "Only an owner of the workspace may do this.")
