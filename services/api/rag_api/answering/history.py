"""The recent turns a question is read with, so that a follow-up ("What is its capital?")
finds and answers what the conversation is about (docs/conversations.md "Follow-up questions").

Bounded whatever the conversation's length: at most HISTORY_TURNS completed messages before
the question, newest first through the index on (conversation_id, created_at, id) with a
LIMIT (never a scan of the conversation), each cut to HISTORY_CHARS in Postgres, and
HISTORY_CHARS in all, the newest turns kept first. Failed or still streaming answers are
not history: they hold no text, or not all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from psycopg import AsyncConnection

HISTORY_TURNS = 6  # messages (three questions and their answers)
HISTORY_CHARS = 4000  # in all, the newest turns first
FOLLOW_UP_USER_TURNS = 2  # earlier questions the extractive provider searches with

SELECT_QUESTION = "SELECT content, conversation_id, created_at, id FROM messages WHERE id = %s"
# The completed messages just before the question, newest first (messages_conversation_idx).
SELECT_HISTORY = """
SELECT role, left(content, %(chars)s) FROM messages
WHERE conversation_id = %(conversation)s AND (created_at, id) < (%(created_at)s, %(id)s)
  AND status = 'completed' AND content <> ''
ORDER BY created_at DESC, id DESC
LIMIT %(turns)s
"""


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    history: tuple[Turn, ...]  # oldest first


async def load_question(conn: AsyncConnection[Any], question_id: UUID) -> Question | None:
    """The question and its bounded history; None when the question is gone."""
    row = await (await conn.execute(SELECT_QUESTION, (question_id,))).fetchone()
    if row is None:
        return None
    content, conversation_id, created_at, message_id = row
    cur = await conn.execute(
        SELECT_HISTORY,
        {
            "conversation": conversation_id,
            "created_at": created_at,
            "id": message_id,
            "chars": HISTORY_CHARS,
            "turns": HISTORY_TURNS,
        },
    )
    return Question(content, bounded([Turn(role, text) for role, text in await cur.fetchall()]))


def bounded(newest_first: Sequence[Turn], max_chars: int = HISTORY_CHARS) -> tuple[Turn, ...]:
    """The newest turns that fit `max_chars` in all (the last one cut to fit), oldest first."""
    kept: list[Turn] = []
    left = max_chars
    for turn in newest_first:
        if left <= 0:
            break
        kept.append(Turn(turn.role, turn.content[:left]))
        left -= len(kept[-1].content)
    return tuple(reversed(kept))


def combined_query(question: str, history: Sequence[Turn], max_chars: int) -> str:
    """The extractive provider's standalone query: the last FOLLOW_UP_USER_TURNS earlier
    questions, then this one, at most `max_chars` (the question whole, the oldest text cut)."""
    earlier = [t.content for t in history if t.role == "user"][-FOLLOW_UP_USER_TURNS:]
    if not earlier:
        return question
    context = "\n".join(earlier)
    room = max_chars - len(question) - 1
    if room <= 0:
        return question[:max_chars]
    return f"{context[-room:]}\n{question}"
