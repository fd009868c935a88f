"""The SQL of `bench retrieval`: the two sides of the api's hybrid search run alone, and
variants of the full-text side, against the bench's own database.

Full-text alone and vector alone are not api modes, so they are the pieces of
rag_api.search.HYBRID_SEARCH (copied here, not imported, while that query is being edited:
the bench checks at run time that the pieces fused as the api fuses them give the api's
own answers) run directly, on the same query text. Variants of the full-text side read a
side table of tsvectors the bench builds in its throwaway database (`simple` config, the
title on every chunk); the api's tables and indexes are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

# The vector side as the api runs it, run after API_VECTOR_SETTINGS in the same transaction:
# HNSW, cosine distance, then sorted by distance as the api's `vec` ranks it (an iterative scan
# in relaxed order returns its rows only roughly sorted). Alone (vector_recall's "before"), a
# plain scan: at most ef_search rows, already in order.
VECTOR_SIDE = """
SELECT id FROM (
    SELECT id, embedding <=> %(vector)s::vector AS distance FROM chunks
    WHERE workspace_id = %(workspace)s AND embedding_model = %(model)s
    ORDER BY embedding <=> %(vector)s::vector
    LIMIT %(candidates)s
) scanned
ORDER BY distance, id
"""

# The api's HNSW settings (rag_api.search.HYBRID_SEARCH's vec_settings), for this transaction.
API_VECTOR_SETTINGS = """
SELECT set_config('hnsw.iterative_scan', %(iterative_scan)s::text, true),
       set_config('hnsw.ef_search', %(ef_search)s::text, true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s::text, true)
"""

# Exact nearest neighbours (run with index scans off: a sequential scan and a sort).
VECTOR_EXACT = """
SELECT id FROM chunks
WHERE workspace_id = %(workspace)s AND embedding_model = %(model)s
ORDER BY embedding <=> %(vector)s::vector, id
LIMIT %(candidates)s
"""

# The api's query: the query's 'english' lexemes, ORed (a question rarely holds every word).
OR_LEXEMES = """to_tsquery('simple', coalesce(nullif(array_to_string(
    ARRAY(SELECT quote_literal(l) FROM unnest(tsvector_to_array(to_tsvector({config}, %(q)s))) l),
    ' | '), ''), quote_literal('')))"""

TSQUERIES = {
    "or": OR_LEXEMES,
    "plainto": "plainto_tsquery({config}, %(q)s)",
    "websearch": "websearch_to_tsquery({config}, %(q)s)",
}

FULL_TEXT_SIDE = """
SELECT c.id
FROM {table} c, (SELECT {tsquery} AS tsq) query
WHERE c.workspace_id = %(workspace)s AND c.{column} @@ query.tsq
ORDER BY {rank}(c.{column}, query.tsq{norm}) DESC, c.id
LIMIT %(candidates)s
"""

# The side table of the variants: per chunk, its text under 'simple' (no stemming, no stop
# words), and under 'english' with its document's title (weight A) before the text (weight D).
CREATE_SIDE_TABLE = """
CREATE TABLE bench_titles (document_id uuid PRIMARY KEY, title text NOT NULL);
CREATE TABLE bench_chunk_tsv (
    id           bigint PRIMARY KEY,
    workspace_id uuid NOT NULL,
    tsv_simple   tsvector NOT NULL,
    tsv_titled   tsvector NOT NULL
)
"""
COPY_TITLES = "COPY bench_titles (document_id, title) FROM STDIN"
DROP_SIDE_TABLE = "DROP TABLE IF EXISTS bench_titles, bench_chunk_tsv"
INGESTED_WORKSPACE = """
SELECT w.id, m.user_id FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id AND m.role = 'owner'
WHERE w.name = 'retrieval' ORDER BY w.created_at DESC LIMIT 1
"""
FILL_SIDE_TABLE = """
INSERT INTO bench_chunk_tsv
SELECT c.id, c.workspace_id, to_tsvector('simple', c.text),
       setweight(to_tsvector('english', coalesce(t.title, '')), 'A') || setweight(c.tsv, 'D')
FROM chunks c LEFT JOIN bench_titles t ON t.document_id = c.document_id
"""
INDEX_SIDE_TABLE = """
CREATE INDEX ON bench_chunk_tsv USING gin (tsv_simple);
CREATE INDEX ON bench_chunk_tsv USING gin (tsv_titled);
ANALYZE bench_chunk_tsv
"""

# chunk id → document id, and the embedding model of the chunks (one per workspace here).
CHUNK_DOCUMENTS = "SELECT c.id, c.document_id::text FROM chunks c WHERE c.workspace_id = %s"
DOCUMENT_HASHES = "SELECT id::text, sha256, status FROM documents WHERE workspace_id = %s"
EMBEDDING_MODELS = "SELECT DISTINCT embedding_model FROM chunks WHERE workspace_id = %s"
INGEST_PROGRESS = """
SELECT count(*) FILTER (WHERE status = 'ingested'), count(*) FILTER (WHERE status = 'error'), count(*)
FROM documents WHERE workspace_id = %s
"""
CHUNK_COUNT = "SELECT count(*) FROM chunks WHERE workspace_id = %s"
SERVER_VERSIONS = """
SELECT 'Postgres ' || current_setting('server_version') || ', pgvector '
       || coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'), '?')
"""


@dataclass(frozen=True, slots=True)
class FullText:
    """One way of running the full-text side (the defaults: the api's before issue 17's measure)."""

    tsquery: str = "or"  # a key of TSQUERIES
    config: str = "english"  # the text search configuration of the query
    column: str = "tsv"  # tsv (chunks, 'english'), tsv_simple or tsv_titled (the side table)
    rank: str = "ts_rank_cd"  # or ts_rank
    norm: int = 0  # ts_rank's normalization flags (0: none; 1: ÷ 1 + log length; 2: ÷ length; …)

    def label(self) -> str:
        parts = [f"{self.tsquery}({self.config})", {"tsv": "chunk tsv"}.get(self.column, self.column)]
        parts.append(f"{self.rank}" + (f", norm {self.norm}" if self.norm else ""))
        return " · ".join(parts)

    def statement(self) -> sql.Composed:
        table = "chunks" if self.column == "tsv" else "bench_chunk_tsv"
        tsquery = TSQUERIES[self.tsquery].format(config=sql.Literal(self.config).as_string(None))
        return sql.SQL(FULL_TEXT_SIDE).format(
            table=sql.Identifier(table),
            tsquery=sql.SQL(tsquery),  # built from the constants above
            column=sql.Identifier(self.column),
            rank=sql.Identifier(self.rank),
            norm=sql.SQL(", {}").format(sql.Literal(self.norm)) if self.norm else sql.SQL(""),
        )


API_FULL_TEXT = FullText(rank="ts_rank", norm=1)  # rag_api.search.HYBRID_SEARCH's fts
BEFORE_FULL_TEXT = FullText()  # what the api ranked by until ArguAna was measured: ts_rank_cd
