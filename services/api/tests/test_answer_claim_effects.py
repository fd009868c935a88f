"""The answer kind's claim effects (SQL) against its Python builder, on the same job rows.

A claim starts answer jobs in one statement that also resets their messages and publishes
the reset (rag_jobqueue.effects); every other transition of an answer builds its events in
Python. A retry or a takeover must read exactly as `_reset(conn, job, "streaming")` would
have written it; a first attempt changes nothing and publishes nothing.
"""

from __future__ import annotations

import uuid

import orjson
import psycopg

from rag_api.answering.kind import CLAIM_EFFECTS, _event
from rag_core.queues import ANSWER_QUEUE
from rag_testing.jobs import claim_once, enqueue_sync
from rag_testing.seed import make_workspace


def test_a_retried_answers_claim_resets_its_message_as_the_python_reset_does(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    messages: dict[str, uuid.UUID] = {}
    with psycopg.connect(database_url) as conn:
        (conversation,) = conn.execute(
            "INSERT INTO conversations (workspace_id, title, created_by) VALUES (%s, 't', %s) RETURNING id",
            (workspace, user),
        ).fetchone() or (None,)
        (question,) = conn.execute(
            "INSERT INTO messages (conversation_id, workspace_id, role, status, content, created_by)"
            " VALUES (%s, %s, 'user', 'completed', 'why?', %s) RETURNING id",
            (conversation, workspace, user),
        ).fetchone() or (None,)
        for name in ("first", "retried"):
            (messages[name],) = conn.execute(
                "INSERT INTO messages (conversation_id, workspace_id, role, status, content, error)"
                " VALUES (%s, %s, 'assistant', 'pending', 'half an answer', 'it broke') RETURNING id",
                (conversation, workspace),
            ).fetchone() or (None,)
    for name, attempt in (("first", 0), ("retried", 1)):
        enqueue_sync(
            database_url,
            ANSWER_QUEUE,
            {
                "message_id": messages[name],
                "question_id": question,
                "conversation_id": conversation,
                "workspace_id": workspace,
                "attempt": attempt,
            },
        )
    jobs, published = claim_once(database_url, ANSWER_QUEUE, CLAIM_EFFECTS, limit=10)
    assert sorted(job.attempt for job in jobs) == [1, 2]
    (retried,) = [job for job in jobs if job.attempt == 2]
    expected = _event(retried, "streaming", delta="", offset=0)
    assert published == [(expected.type, orjson.loads(orjson.dumps(expected.payload)))]
    with psycopg.connect(database_url) as conn:
        rows = {
            message_id: rest
            for message_id, *rest in conn.execute(
                "SELECT id, status, content, citations, error FROM messages WHERE id = ANY(%s)",
                (list(messages.values()),),
            )
        }
    assert rows[messages["retried"]] == ["streaming", "", [], None]
    assert rows[messages["first"]] == ["pending", "half an answer", [], "it broke"]
