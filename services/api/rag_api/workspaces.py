"""Workspaces and their members.

POST/GET /api/workspaces, POST /api/workspaces/{id}/members,
DELETE /api/workspaces/{id}/members/{user_id}. Adding members and removing others is
for owners only (403 for a member, 404 for a stranger); any member may remove
themselves (leave), so that nobody can be kept in a workspace, and its event stream,
against their will. The last owner cannot be removed (409 `last_owner`). A workspace
has at most WORKSPACE_MAX_MEMBERS members (409 `too_many_members`): adds to one
workspace are serialised by a lock on its row, so concurrent adds cannot overshoot.
A user creates at most MAX_WORKSPACES_PER_USER workspaces (409 `too_many_workspaces`):
workers share their claims fairly per workspace, so an unbounded number of workspaces
would be an unbounded share of the queue.

Membership is live (docs/contract.md §5): every change publishes, in its own
transaction, `workspace.member_added` or `workspace.member_removed` to every member,
the affected user included. The creation of a workspace publishes the creator's
`member_added` (owner) too, although they are its only recipient: every membership of a
user then has its event in their stream, which is what lets an open connection follow
the user's memberships from the stream alone (rag_api.realtime.redaction). A removal
publishes before it deletes the row, so that the removed user is still a recipient.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from rag_api.access import require_member, require_owner
from rag_api.body import Name, read_model
from rag_api.deps import pool_of, require_user, settings_of
from rag_api.errors import ApiError, not_found
from rag_api.limits import too_many_members, too_many_workspaces
from rag_api.locks import WORKSPACES_OF_USER, lock_user
from rag_api.responses import json_response
from rag_api.shapes import row_out
from rag_core.events import Event, WorkspaceMemberAdded, WorkspaceMemberRemoved
from rag_eventbus import publish

INSERT_WORKSPACE = """
INSERT INTO workspaces (name, created_by) VALUES (%s, %s) RETURNING id, name, created_at
"""
INSERT_MEMBER = """
INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)
ON CONFLICT (workspace_id, user_id) DO NOTHING
RETURNING workspace_id, user_id, role
"""
LIST_WORKSPACES = """
SELECT w.id, w.name, m.role, w.created_at
FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id
WHERE m.user_id = %s
ORDER BY w.created_at, w.id
"""
COUNT_CREATED = "SELECT count(*) FROM workspaces WHERE created_by = %s"
# FOR NO KEY UPDATE serialises member adds of one workspace without blocking the
# FOR KEY SHARE locks that inserts of its documents and conversations take.
LOCK_WORKSPACE = "SELECT id FROM workspaces WHERE id = %s FOR NO KEY UPDATE"
COUNT_MEMBERS = "SELECT count(*) FROM workspace_members WHERE workspace_id = %s"
# Owners are locked so that two concurrent removals cannot both pass the last-owner check.
LOCK_OWNERS = """
SELECT user_id FROM workspace_members WHERE workspace_id = %s AND role = 'owner' ORDER BY user_id FOR UPDATE
"""
# The member being removed is locked, so a concurrent removal of the same user waits and
# then finds nobody (404, nothing published).
LOCK_MEMBER = "SELECT role FROM workspace_members WHERE workspace_id = %s AND user_id = %s FOR UPDATE"
DELETE_MEMBER = "DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = %s"


class NewWorkspace(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Name


class NewMember(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: UUID
    role: Literal["member", "owner"] = "member"


async def create_workspace(request: Request) -> Response:
    user_id = require_user(request)
    body = await read_model(request, NewWorkspace)
    cap = settings_of(request).max_workspaces_per_user
    async with pool_of(request).connection() as conn, conn.transaction():
        await lock_user(conn, WORKSPACES_OF_USER, user_id)  # concurrent creates cannot overshoot
        created = await (await conn.execute(COUNT_CREATED, (user_id,))).fetchone()
        if created is not None and created[0] >= cap:
            raise too_many_workspaces(cap)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(INSERT_WORKSPACE, (body.name, user_id))
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(INSERT_MEMBER, (row["id"], user_id, "owner"))
        await publish(
            conn, [Event.of(WorkspaceMemberAdded(workspace_id=row["id"], user_id=user_id, role="owner"))]
        )
    return json_response(row_out(row, role="owner"), status=201)


async def list_workspaces(request: Request) -> Response:
    user_id = require_user(request)
    async with pool_of(request).connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(LIST_WORKSPACES, (user_id,))
        rows = await cur.fetchall()
    return json_response({"items": [row_out(r) for r in rows]})


async def add_member(request: Request) -> Response:
    user_id = require_user(request)
    workspace_id: UUID = request.path_params["workspace_id"]
    body = await read_model(request, NewMember)
    limit = settings_of(request).workspace_max_members
    async with pool_of(request).connection() as conn, conn.transaction():
        await require_owner(conn, workspace_id, user_id)
        if await (await conn.execute(LOCK_WORKSPACE, (workspace_id,))).fetchone() is None:
            raise not_found("workspace")  # it went away meanwhile
        cur = conn.cursor(row_factory=dict_row)
        try:
            await cur.execute(INSERT_MEMBER, (workspace_id, body.user_id, body.role))
        except psycopg.errors.ForeignKeyViolation:  # the workspace went away meanwhile
            raise not_found("workspace") from None
        row = await cur.fetchone()
        if row is None:
            raise ApiError(409, "already_member", "That user is already a member of the workspace.")
        count = await (await conn.execute(COUNT_MEMBERS, (workspace_id,))).fetchone()
        if count is None or count[0] > limit:
            raise too_many_members(limit)  # rolls the insert back
        added = WorkspaceMemberAdded(workspace_id=workspace_id, user_id=body.user_id, role=row["role"])
        await publish(conn, [Event.of(added)])  # the new member is a recipient already
    return json_response(row, status=201)


async def remove_member(request: Request) -> Response:
    user_id = require_user(request)
    workspace_id: UUID = request.path_params["workspace_id"]
    target: UUID = request.path_params["user_id"]
    async with pool_of(request).connection() as conn, conn.transaction():
        cur = await conn.execute(LOCK_OWNERS, (workspace_id,))
        owners = {r[0] for r in await cur.fetchall()}
        if user_id not in owners:
            await require_member(conn, workspace_id, user_id)  # 404 for a stranger
            if target != user_id:
                raise ApiError(403, "forbidden", "Only an owner may remove another member.")
        if target in owners and len(owners) == 1:
            raise ApiError(409, "last_owner", "The last owner of a workspace cannot be removed.")
        member = await (await conn.execute(LOCK_MEMBER, (workspace_id, target))).fetchone()
        if member is None:
            raise not_found("member")
        removed = WorkspaceMemberRemoved(workspace_id=workspace_id, user_id=target, role=member[0])
        await publish(conn, [Event.of(removed)])  # while the removed user is still a recipient
        await conn.execute(DELETE_MEMBER, (workspace_id, target))
    return Response(status_code=204)
