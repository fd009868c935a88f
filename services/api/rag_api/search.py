"""Hybrid search over a workspace: pgvector (HNSW, cosine) and full-text, fused by RRF.

Reciprocal rank fusion needs no score calibration between the two rankings: a
chunk's score is the sum of 1/(60 + rank) over the rankings it appears in. The
full-text side ORs the query's lexemes (a question rarely contains every word of
its answer) and ranks by cover density. Only chunks embedded with the current
model enter the vector ranking: mixing vector spaces would rank noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from rag_api.access import require_member
from rag_api.deps import pool_of, require_user
from rag_api.errors import ApiError
from rag_api.responses import json_response
from rag_embedding import Embedder, vector_literal

RRF_K = 60
CANDIDATES = 50  # per ranking, before fusion
MAX_QUERY_CHARS = 1000

HYBRID_SEARCH = """
WITH vec AS (
    SELECT id, row_number() OVER (ORDER BY embedding <=> %(vector)s::vector) AS rank
    FROM chunks
    WHERE workspace_id = %(workspace)s AND embedding_model = %(model)s
    ORDER BY embedding <=> %(vector)s::vector
    LIMIT %(candidates)s
), query AS (
    SELECT to_tsquery('simple', coalesce(nullif(array_to_string(
        ARRAY(SELECT quote_literal(l) FROM unnest(tsvector_to_array(to_tsvector('english', %(q)s))) l),
        ' | '), ''), quote_literal(''))) AS tsq
), fts AS (
    SELECT c.id, row_number() OVER (ORDER BY ts_rank_cd(c.tsv, query.tsq) DESC, c.id) AS rank
    FROM chunks c, query
    WHERE c.workspace_id = %(workspace)s AND c.tsv @@ query.tsq
    ORDER BY ts_rank_cd(c.tsv, query.tsq) DESC, c.id
    LIMIT %(candidates)s
), fused AS (
    SELECT id, sum(1.0 / (%(rrf_k)s + rank)) AS score
    FROM (SELECT id, rank FROM vec UNION ALL SELECT id, rank FROM fts) ranked
    GROUP BY id
)
SELECT c.id, c.document_id, d.filename, c.ordinal, c.text, f.score::float8
FROM fused f
JOIN chunks c ON c.id = f.id
JOIN documents d ON d.id = c.document_id
ORDER BY f.score DESC, c.id
LIMIT %(k)s
"""


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    document_id: UUID
    filename: str
    ordinal: int
    text: str
    score: float

    def as_json(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "filename": self.filename,
            "ordinal": self.ordinal,
            "text": self.text,
            "score": self.score,
        }


async def hybrid_search(
    conn: AsyncConnection[Any], embedder: Embedder, workspace_id: UUID, query: str, k: int
) -> list[Hit]:
    """The `k` best chunks of the workspace for `query`."""
    vector = (await embedder.embed([query]))[0]
    cur = await conn.execute(
        HYBRID_SEARCH,
        {
            "vector": vector_literal(vector),
            "workspace": workspace_id,
            "model": embedder.model_name,
            "q": query,
            "candidates": max(CANDIDATES, k),
            "rrf_k": RRF_K,
            "k": k,
        },
    )
    return [Hit(*row) for row in await cur.fetchall()]


def parse_search_params(request: Request) -> tuple[str, int]:
    query = request.query_params.get("q", "").strip()
    if not query:
        raise ApiError(400, "invalid_query", "The search query `q` must not be empty.")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(400, "invalid_query", f"The search query is longer than {MAX_QUERY_CHARS} characters.")
    raw_k = request.query_params.get("k", "10")
    try:
        k = int(raw_k)
    except ValueError:
        k = 0
    if not 1 <= k <= 50:
        raise ApiError(400, "invalid_parameter", "`k` must be an integer from 1 to 50.")
    return query, k


async def search_endpoint(request: Request) -> Response:
    """GET /api/workspaces/{id}/search?q=&k=10"""
    user_id = require_user(request)
    workspace_id: UUID = request.path_params["workspace_id"]
    query, k = parse_search_params(request)
    embedder: Embedder = request.app.state.embedder
    async with pool_of(request).connection() as conn:
        await require_member(conn, workspace_id, user_id)
        hits = await hybrid_search(conn, embedder, workspace_id, query, k)
    return json_response({"items": [hit.as_json() for hit in hits]})
