"""Hybrid search over a workspace: pgvector (HNSW, cosine) and full-text, fused by RRF.

Reciprocal rank fusion needs no score calibration between the two rankings: a
chunk's score is the sum of weight/(60 + rank) over the rankings it appears in, the
vector ranking weighing 2 and the full-text one 1. The full-text side ORs the query's
lexemes (a question rarely contains every word of its answer) and ranks by `ts_rank`
with length normalisation 1. Both choices were measured on a labelled set against the
alternatives (`python -m bench retrieval`, docs/benchmarks.md, 9). Only chunks embedded
with the current model enter the vector ranking: mixing vector spaces would rank noise.

The vector side holds up whatever share of the table a workspace has. One HNSW index
serves every workspace, and `WHERE workspace_id = ...` is checked on the rows the graph
walk yields: a plain scan stops after `hnsw.ef_search` rows, so a workspace holding a
small share of the chunks got few or none (pgvector 0.6). Now (`vec_ann`) the scan is
pgvector 0.8's iterative one (`hnsw.iterative_scan`): it walks on until the workspace's
rows fill the candidates or `hnsw.max_scan_tuples` rows were visited. The settings are
made in the statement itself, by `set_config(..., is_local => true)` in an InitPlan the
scan waits on (a one-time filter), so they hold for this statement's transaction only,
the pool connection keeps its defaults, and it stays one round trip. A workspace too
small for the walk to fill its candidates within that bound (under about
CANDIDATES / MAX_SCAN_TUPLES of the table, or a filter as narrow) is ranked exactly
instead (`vec_exact`, ordered by an expression the index cannot serve, so the planner
reads the workspace's rows by its btree): few rows, so cheap. The planner itself also
picks that exact plan for `vec_ann` when its statistics say the workspace is small.
`python -m bench vector-recall` measures recall and latency at four shares.

A hit (and a citation made from it) says where it is, so a viewer can jump to it: `page`,
the chunk's first page, and `char_start`/`char_end`, its range in the document's parsed
text. The ingest worker numbers pages from the parsed text's form feeds, so the one page
of a one-page PDF (or a PNG) is stored as NULL: a document that has a `page_count` gives
such a chunk page 1, one without pages (text, Word, e-mail...) keeps `null`.

Filters (rag_api.search_filters) are predicates inside both rankings, before their
candidate limits, so a filtered search ranks only the chunks that match.

No database connection is held while the query is embedded: the embedder may wait for
a slow service up to EMBEDDING_TIMEOUT_SECONDS, and a pool connection held meanwhile by
each waiting search would leave every other route without one (503). So membership is
checked on one short checkout, the query embedded with no connection, and the ranking
run on a second checkout. An embedder that fails or overruns is 503 `embedding_unavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response

from rag_api.access import require_member
from rag_api.deps import pool_of, require_user
from rag_api.errors import ApiError
from rag_api.limits import embedding_unavailable
from rag_api.params import has_nul, int_param
from rag_api.responses import json_response
from rag_api.search_filters import SearchFilters, query_filters
from rag_embedding import Embedder, EmbeddingError, vector_literal

log = structlog.get_logger("rag_api.search")
NO_FILTERS = SearchFilters()

RRF_K = 60
# Full-text ranking and fusion weights, as measured on ArguAna (docs/benchmarks.md, 9): ts_rank
# with normalisation 1 (÷ 1 + log length) ranked better than ts_rank_cd's cover density, and
# the vector side, much the better of the two alone, counts twice in the fusion.
VECTOR_WEIGHT = 2.0
TEXT_WEIGHT = 1.0
CANDIDATES = 50  # per ranking, before fusion
# The vector side's HNSW scan (pgvector >= 0.8): iterative, so that rows of other workspaces
# the graph walk meets do not use up the candidates; ef_search is the candidate count.
ITERATIVE_SCAN = "relaxed_order"
MAX_SCAN_TUPLES = 20_000  # pgvector's default; past it the workspace's rows are ranked exactly
MAX_QUERY_CHARS = 1000

HYBRID_SEARCH = """
WITH vec_settings AS MATERIALIZED (
    SELECT set_config('hnsw.iterative_scan', %(iterative_scan)s::text, true),
           set_config('hnsw.ef_search', %(ef_search)s::text, true),
           set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s::text, true)
), vec_ann AS MATERIALIZED (
    SELECT id, embedding <=> %(vector)s::vector AS distance
    FROM chunks
    WHERE workspace_id = %(workspace)s AND embedding_model = %(model)s{vec_filter}
      AND (SELECT true FROM vec_settings)
    ORDER BY embedding <=> %(vector)s::vector
    LIMIT %(candidates)s
), vec_exact AS (
    SELECT id, embedding <=> %(vector)s::vector AS distance
    FROM chunks
    WHERE workspace_id = %(workspace)s AND embedding_model = %(model)s{vec_filter}
      AND (SELECT count(*) FROM vec_ann) < %(candidates)s
    ORDER BY (embedding <=> %(vector)s::vector) + 0, id
    LIMIT %(candidates)s
), vec AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, distance FROM vec_ann WHERE (SELECT count(*) FROM vec_ann) = %(candidates)s
        UNION ALL
        SELECT id, distance FROM vec_exact
    ) found
), query AS (
    SELECT to_tsquery('simple', coalesce(nullif(array_to_string(
        ARRAY(SELECT quote_literal(l) FROM unnest(tsvector_to_array(to_tsvector('english', %(q)s))) l),
        ' | '), ''), quote_literal(''))) AS tsq
), fts AS (
    SELECT c.id, row_number() OVER (ORDER BY ts_rank(c.tsv, query.tsq, 1) DESC, c.id) AS rank
    FROM chunks c, query
    WHERE c.workspace_id = %(workspace)s AND c.tsv @@ query.tsq{fts_filter}
    ORDER BY ts_rank(c.tsv, query.tsq, 1) DESC, c.id
    LIMIT %(candidates)s
), fused AS (
    SELECT id, sum(weight / (%(rrf_k)s + rank)) AS score
    FROM (
        SELECT id, rank, %(vector_weight)s::float8 AS weight FROM vec
        UNION ALL
        SELECT id, rank, %(text_weight)s::float8 FROM fts
    ) ranked
    GROUP BY id
)
SELECT c.id, c.document_id, d.filename, c.ordinal, c.text, f.score::float8,
    coalesce(c.page, CASE WHEN d.page_count IS NOT NULL THEN 1 END), c.char_start, c.char_end
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
    # Where the passage is (defaults for passages built in tests and bench, not from a row).
    page: int | None = None
    char_start: int = 0
    char_end: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "filename": self.filename,
            "ordinal": self.ordinal,
            "text": self.text,
            "score": self.score,
            "page": self.page,
            "char_start": self.char_start,
            "char_end": self.char_end,
        }


async def hybrid_search(
    pool: AsyncConnectionPool[Any],
    embedder: Embedder,
    workspace_id: UUID,
    query: str,
    k: int,
    filters: SearchFilters = NO_FILTERS,
) -> list[Hit]:
    """The `k` best chunks of the workspace for `query` among those `filters` let through.

    The query is embedded before a connection is taken (see the module docstring);
    EmbeddingError (a timeout included) propagates to the caller.
    """
    vector = vector_literal((await embedder.embed([query]))[0])
    async with pool.connection() as conn:
        return await rank_chunks(conn, embedder.model_name, vector, workspace_id, query, k, filters)


def hybrid_search_sql(filters: SearchFilters) -> sql.Composed:
    """HYBRID_SEARCH with the filters' predicates in both rankings, before their limits."""
    return sql.SQL(HYBRID_SEARCH).format(  # type: ignore[arg-type]  # a constant template
        vec_filter=filters.predicate("chunks"), fts_filter=filters.predicate("c")
    )


async def rank_chunks(
    conn: AsyncConnection[Any],
    model: str,
    vector: str,
    workspace_id: UUID,
    query: str,
    k: int,
    filters: SearchFilters = NO_FILTERS,
) -> list[Hit]:
    """The fused ranking for an already embedded query (`vector` in pgvector's text form)."""
    cur = await conn.execute(
        hybrid_search_sql(filters),
        {
            **filters.params(),
            "vector": vector,
            "workspace": workspace_id,
            "model": model,
            "q": query,
            "candidates": max(CANDIDATES, k),
            "iterative_scan": ITERATIVE_SCAN,
            "ef_search": max(CANDIDATES, k),
            "max_scan_tuples": MAX_SCAN_TUPLES,
            "rrf_k": RRF_K,
            "vector_weight": VECTOR_WEIGHT,
            "text_weight": TEXT_WEIGHT,
            "k": k,
        },
    )
    return [Hit(*row) for row in await cur.fetchall()]


def parse_search_params(request: Request) -> tuple[str, int]:
    """(q, k) of a search; 400 `invalid_query` for an empty, too long or NUL-holding `q`."""
    raw = request.query_params.get("q", "")
    query = raw.strip()
    if not query:
        raise ApiError(400, "invalid_query", "The search query `q` must not be empty.")
    # The length as sent (not stripped): exactly the described `maxLength`.
    if len(raw) > MAX_QUERY_CHARS:
        raise ApiError(400, "invalid_query", f"The search query is longer than {MAX_QUERY_CHARS} characters.")
    if has_nul(query):
        raise ApiError(400, "invalid_query", "The search query `q` must not contain NUL characters.")
    return query, int_param(request, "k", 10, 1, 50)


async def search_endpoint(request: Request) -> Response:
    """GET /api/workspaces/{id}/search?q=&k=10[&document_id=&content_type=&created_after=&created_before=]"""
    user_id = require_user(request)
    workspace_id: UUID = request.path_params["workspace_id"]
    query, k = parse_search_params(request)
    filters = query_filters(request)
    embedder: Embedder = request.app.state.embedder
    pool = pool_of(request)
    async with pool.connection() as conn:
        await require_member(conn, workspace_id, user_id)
    try:
        hits = await hybrid_search(pool, embedder, workspace_id, query, k, filters)
    except EmbeddingError as exc:
        log.warning("search_embedding_failed", error=str(exc), error_type=type(exc).__name__)
        raise embedding_unavailable() from None
    return json_response({"items": [hit.as_json() for hit in hits]})
