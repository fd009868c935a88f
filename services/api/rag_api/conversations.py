"""Conversations and their messages (docs/contract.md §4).

Posting a question writes, in ONE transaction, the user's message (completed),
the assistant's reply (pending), the answer job and both `message.created`
events, and NOTIFYs `answer_jobs`: an api replica's answer worker picks it up.

A question is 1 to MAX_QUESTION_CHARS characters, not blank (400 `invalid_content`).
A user asks at most QUESTIONS_PER_MINUTE questions in any 60 seconds, counted over all
replicas in Postgres (the user's own `user` messages of the window) under a per-user
advisory lock held to commit, so concurrent posts cannot both see room for one more;
the refused one (429 `rate_limited`, Retry-After = seconds until the oldest counted
question leaves the window) writes nothing. A question's `filters` (the search's, see
rag_api.search_filters) are checked before anything is written and stored with its
answer job, whose retrieval applies them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from rag_api.access import require_member
from rag_api.body import Name, read_model
from rag_api.deps import pool_of, require_user, settings_of
from rag_api.errors import ApiError, not_found
from rag_api.limits import invalid_content, rate_limited
from rag_api.locks import QUESTIONS_OF_USER, lock_user
from rag_api.responses import json_response
from rag_api.search_filters import parse_filters
from rag_api.shapes import row_out
from rag_core.events import Event, MessageCreated
from rag_core.queues import ANSWER_QUEUE
from rag_eventbus import publish
from rag_jobqueue import enqueue

QUESTION_WINDOW_SECONDS = 60

CONVERSATION_COLUMNS = "id, workspace_id, title, created_by, created_at"
MESSAGE_COLUMNS = (
    "id, conversation_id, workspace_id, role, status, content, citations, error, created_at, updated_at"
)

INSERT_CONVERSATION = f"""
INSERT INTO conversations (workspace_id, title, created_by) VALUES (%s, %s, %s)
RETURNING {CONVERSATION_COLUMNS}
"""
LIST_CONVERSATIONS = f"""
SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE workspace_id = %s ORDER BY created_at DESC, id DESC
"""
SELECT_CONVERSATION_WORKSPACE = "SELECT workspace_id FROM conversations WHERE id = %s"
LIST_MESSAGES = f"""
SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s ORDER BY created_at, id
"""
INSERT_MESSAGE = f"""
INSERT INTO messages (conversation_id, workspace_id, role, status, content, created_by)
VALUES (%(conversation)s, %(workspace)s, %(role)s, %(status)s, %(content)s, %(user)s)
RETURNING {MESSAGE_COLUMNS}
"""
# Seconds until each of the user's newest questions of the window leaves it, newest first
# (index messages_user_questions_idx, migration 0005).
RECENT_QUESTIONS = """
SELECT extract(epoch FROM created_at + make_interval(secs => %(window)s) - clock_timestamp())::float8
FROM messages
WHERE created_by = %(user)s AND role = 'user'
  AND created_at > clock_timestamp() - make_interval(secs => %(window)s)
ORDER BY created_at DESC
LIMIT %(limit)s
"""


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: Name


class NewMessage(BaseModel):
    """`content` is checked against MAX_QUESTION_CHARS by `question_text` (a 400, not a 422);
    `filters` by `parse_filters` (400 `invalid_parameter`, as the search's parameters)."""

    model_config = ConfigDict(extra="ignore")
    content: str
    filters: Any = None


def message_out(row: dict[str, Any]) -> dict[str, Any]:
    return row_out(row)


async def conversation_workspace(conn: AsyncConnection[Any], conversation_id: UUID, user_id: UUID) -> UUID:
    """The conversation's workspace, checking membership; 404 for strangers and unknown ids."""
    cur = await conn.execute(SELECT_CONVERSATION_WORKSPACE, (conversation_id,))
    row = await cur.fetchone()
    if row is None:
        raise not_found("conversation")
    workspace_id: UUID = row[0]
    try:
        await require_member(conn, workspace_id, user_id)
    except ApiError:
        raise not_found("conversation") from None
    return workspace_id


async def create_conversation(request: Request) -> Response:
    user_id = require_user(request)
    workspace_id: UUID = request.path_params["workspace_id"]
    body = await read_model(request, NewConversation)
    async with pool_of(request).connection() as conn, conn.transaction():
        await require_member(conn, workspace_id, user_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(INSERT_CONVERSATION, (workspace_id, body.title, user_id))
        row = await cur.fetchone()
    assert row is not None
    return json_response(row_out(row), status=201)


async def list_conversations(request: Request) -> Response:
    user_id = require_user(request)
    workspace_id: UUID = request.path_params["workspace_id"]
    async with pool_of(request).connection() as conn:
        await require_member(conn, workspace_id, user_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(LIST_CONVERSATIONS, (workspace_id,))
        rows = await cur.fetchall()
    return json_response({"items": [row_out(r) for r in rows]})


async def list_messages(request: Request) -> Response:
    """The messages, oldest first. A streaming answer's `content` is its text so far (the
    answer job appends each delta to it in the transaction that publishes the delta's
    event), so a client joining mid-stream starts from it and applies the later deltas."""
    user_id = require_user(request)
    conversation_id: UUID = request.path_params["conversation_id"]
    async with pool_of(request).connection() as conn:
        await conversation_workspace(conn, conversation_id, user_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(LIST_MESSAGES, (conversation_id,))
        rows = await cur.fetchall()
    return json_response({"items": [message_out(r) for r in rows]})


async def post_message(request: Request) -> Response:
    user_id = require_user(request)
    conversation_id: UUID = request.path_params["conversation_id"]
    body = await read_model(request, NewMessage)
    settings = settings_of(request)
    content = question_text(body.content, settings.max_question_chars)
    filters = parse_filters(body.filters).as_json()
    async with pool_of(request).connection() as conn, conn.transaction():
        workspace_id = await conversation_workspace(conn, conversation_id, user_id)
        await check_question_rate(conn, user_id, settings.questions_per_minute)
        cur = conn.cursor(row_factory=dict_row)
        common = {"conversation": conversation_id, "workspace": workspace_id, "user": user_id}
        await cur.execute(
            INSERT_MESSAGE, {**common, "role": "user", "status": "completed", "content": content}
        )
        question = await cur.fetchone()
        await cur.execute(INSERT_MESSAGE, {**common, "role": "assistant", "status": "pending", "content": ""})
        reply = await cur.fetchone()
        assert question is not None and reply is not None
        answer_job = {
            "message_id": reply["id"],
            "question_id": question["id"],
            "conversation_id": conversation_id,
            "workspace_id": workspace_id,
            "max_attempts": settings.job_max_attempts,
            "filters": None if filters is None else Jsonb(filters),
        }
        await enqueue(conn, ANSWER_QUEUE, answer_job)
        await publish(conn, [created_event(question), created_event(reply)])
    return json_response({"message": message_out(question), "reply": message_out(reply)}, status=201)


def question_text(raw: str, max_chars: int) -> str:
    """The question without surrounding whitespace; 400 invalid_content if empty, blank or too long.

    The length is that of the text as sent: what the described `maxLength` says is accepted.
    """
    content = raw.strip()
    if not content or len(raw) > max_chars:
        raise invalid_content(max_chars)
    return content


async def check_question_rate(conn: AsyncConnection[Any], user_id: UUID, per_minute: int) -> None:
    """429 rate_limited when the user asked `per_minute` questions in the last minute.

    Must run inside the transaction that inserts the question: the advisory lock it
    takes is held to commit, so the next post of the same user counts this one.
    """
    await lock_user(conn, QUESTIONS_OF_USER, user_id)
    cur = await conn.execute(
        RECENT_QUESTIONS, {"user": user_id, "window": QUESTION_WINDOW_SECONDS, "limit": per_minute}
    )
    recent = await cur.fetchall()
    if len(recent) >= per_minute:
        raise rate_limited("questions", per_minute, retry_after=recent[-1][0])


def created_event(row: dict[str, Any]) -> Event:
    return Event.of(
        MessageCreated(
            workspace_id=row["workspace_id"],
            message_id=row["id"],
            conversation_id=row["conversation_id"],
            role=row["role"],
            status=row["status"],
            content=row["content"],
        )
    )
