"""The answer job: retrieve, stream a provider's text as coalesced events, complete.

Runs on the shared job runtime inside the api processes (ANSWER_CONCURRENCY per
process). Every streamed delta is written under the lease (fenced), so a replica
that lost its job cannot keep streaming into the message. A takeover or a retry
restarts the answer: the content is reset and a new `streaming` sequence begins
(a `streaming` event at offset 0 with an empty delta).

Retrieval reads the question with the conversation's recent turns (answering.history):
the provider makes it a standalone search query, and the answer sees a bounded history.

Streaming is linear in the answer's length: each delta is appended to the stored
content in Postgres (`content || delta`, only the delta travels) and its event carries
the delta and its offset, never the text so far. `completed` carries the full content,
exactly the concatenation of the deltas (nothing is stripped).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from rag_api.answering.coalesce import coalesce
from rag_api.answering.history import load_question
from rag_api.answering.providers import AnswerProvider, LLMPermanentError, LLMStreamError, LLMTransientError
from rag_api.search import Hit, hybrid_search
from rag_api.search_filters import SearchFilters
from rag_core.events import Citation, Event, MessageStatus, MessageStatusUpdated
from rag_core.queues import ANSWER_QUEUE
from rag_embedding import Embedder, EmbeddingError
from rag_eventbus import publish
from rag_jobqueue import ClaimEffects, Job, Lease, PermanentJobError, PublicMessages, public_message

log = structlog.get_logger("rag_api.answering")

RETRIEVE_K = 5
CITATION = re.compile(r"\[(\d{1,2})\]")

# What the asker reads when an answer fails (the runtime adds "(ref job <id>)"); the
# exception's text, which may name the model endpoint or quote its answer, is only logged.
LLM_REFUSED = "The answer could not be generated: the language model refused the request."
ANSWER_ERRORS: PublicMessages = {
    LLMStreamError: "The answer broke off while it was being generated.",
    LLMTransientError: "The answer could not be generated: the language model could not be reached.",
    EmbeddingError: "The answer could not be generated: the embedding service could not be reached.",
    psycopg.OperationalError: "The answer could not be generated: the database could not be reached.",
}

# The claim's effects (rag_jobqueue.effects): a first attempt stays `pending` until its first
# delta; a retry or a takeover discards whatever an earlier attempt streamed, as
# `_reset(conn, job, "streaming")` does: the message emptied, a `streaming` event at offset 0
# with an empty delta (tests/answering/test_claim_effects.py compares the two).
CLAIM_EFFECTS = ClaimEffects(
    update=sql.SQL("""
UPDATE messages m SET status = 'streaming', content = '', citations = '[]'::jsonb, error = NULL,
    updated_at = now()
FROM started s WHERE s.attempt > 1 AND m.id = s.message_id
"""),
    events=sql.SQL("""
SELECT s.id AS job_id, 1 AS n, jsonb_build_object(
    'type', 'message.status_updated', 'audience', s.workspace_id,
    'payload', jsonb_build_object(
        'workspace_id', s.workspace_id, 'message_id', s.message_id,
        'conversation_id', s.conversation_id, 'status', 'streaming', 'delta', '', 'offset', 0)
) AS event FROM started s WHERE s.attempt > 1
"""),
)

# Sets the whole message: the resets (content '') and the failure.
SET_MESSAGE = """
UPDATE messages SET status = %(status)s, content = %(content)s, citations = %(citations)s,
    error = %(error)s, updated_at = now()
WHERE id = %(id)s
"""
APPEND_DELTA = """
UPDATE messages SET status = 'streaming', content = content || %(delta)s, updated_at = now()
WHERE id = %(id)s
"""
# The content is already the concatenation of the deltas: it is not sent again.
COMPLETE_MESSAGE = """
UPDATE messages SET status = 'completed', citations = %(citations)s, error = NULL, updated_at = now()
WHERE id = %(id)s
"""

Conn = AsyncConnection[Any]


class AnswerKind:
    queue = ANSWER_QUEUE
    claim_effects = CLAIM_EFFECTS

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        embedder: Embedder,
        provider: AnswerProvider,
        *,
        timeout_seconds: float | None = 300,
        coalesce_interval: float = 0.1,
        coalesce_chars: int = 200,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.provider = provider
        self.timeout_seconds = timeout_seconds
        self.coalesce_interval = coalesce_interval
        self.coalesce_chars = coalesce_chars

    async def run(self, job: Job, lease: Lease) -> None:
        async with self.pool.connection() as conn:
            question = await load_question(conn, job.row["question_id"])
        if question is None:
            raise PermanentJobError("The question was deleted.")
        filters = SearchFilters.from_json(job.row.get("filters"))
        parts: list[str] = []
        offset = 0  # in code points, as len() and Postgres's length() count
        try:
            # A follow-up is searched for as a standalone query (one extra model call for
            # `openai`). No connection is held meanwhile, nor while the query is embedded
            # (hybrid_search takes its own).
            query = await self.provider.search_query(question.text, question.history)
            hits = await hybrid_search(
                self.pool, self.embedder, job.row["workspace_id"], query, RETRIEVE_K, filters
            )
            deltas = coalesce(
                self.provider.stream(question.text, hits, question.history),
                interval=self.coalesce_interval,
                max_chars=self.coalesce_chars,
            )
            async for delta in deltas:
                async with self.pool.connection() as conn, conn.transaction():
                    await lease.check(conn)
                    await conn.execute(APPEND_DELTA, {"delta": delta, "id": job.row["message_id"]})
                    await publish(conn, [_event(job, "streaming", delta=delta, offset=offset)])
                parts.append(delta)
                offset += len(delta)
        except LLMPermanentError as exc:
            raise PermanentJobError(LLM_REFUSED) from exc
        content = "".join(parts)
        citations = cited(content, hits)
        async with self.pool.connection() as conn, conn.transaction():
            await lease.finish(conn)
            await conn.execute(
                COMPLETE_MESSAGE, {"citations": _citations_json(citations), "id": job.row["message_id"]}
            )
            await publish(conn, [_event(job, "completed", content=content, citations=citations)])
        log.info("answer_completed", chars=len(content), citations=len(citations))

    async def _reset(self, conn: Conn, job: Job, status: MessageStatus, error: str | None = None) -> Event:
        """Empties the message (a new attempt, a retry, a release, a failure) and says so."""
        await conn.execute(
            SET_MESSAGE,
            {
                "status": status,
                "content": "",
                "citations": _citations_json([]),
                "error": error,
                "id": job.row["message_id"],
            },
        )
        if status == "streaming":
            return _event(job, "streaming", delta="", offset=0)
        return _event(job, status, content="", error=error)

    async def on_retry(self, conn: Conn, job: Job, error: str) -> list[Event]:
        return [await self._reset(conn, job, "pending")]

    async def on_failed(self, conn: Conn, job: Job, error: str) -> list[Event]:
        return [await self._reset(conn, job, "failed", error)]

    async def on_released(self, conn: Conn, job: Job) -> list[Event]:
        return [await self._reset(conn, job, "pending")]

    def user_message(self, exc: BaseException) -> str:
        return public_message(exc, ANSWER_ERRORS)


def _event(
    job: Job,
    status: MessageStatus,
    *,
    content: str | None = None,
    delta: str | None = None,
    offset: int | None = None,
    citations: list[Citation] | None = None,
    error: str | None = None,
) -> Event:
    return Event.of(
        MessageStatusUpdated(
            workspace_id=job.row["workspace_id"],
            message_id=job.row["message_id"],
            conversation_id=job.row["conversation_id"],
            status=status,
            content=content,
            delta=delta,
            offset=offset,
            citations=citations,
            error=error,
        )
    )


def _citations_json(citations: list[Citation]) -> Jsonb:
    return Jsonb([c.model_dump(mode="json") for c in citations])


def cited(content: str, hits: list[Hit]) -> list[Citation]:
    """The passages the answer cites as [n], in order of first citation."""
    seen: list[int] = []
    for match in CITATION.finditer(content):
        n = int(match.group(1))
        if 1 <= n <= len(hits) and n not in seen:
            seen.append(n)
    return [citation(hits[n - 1]) for n in seen]


def citation(hit: Hit) -> Citation:
    return Citation(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        filename=hit.filename,
        ordinal=hit.ordinal,
        page=hit.page,
        char_start=hit.char_start,
        char_end=hit.char_end,
    )
