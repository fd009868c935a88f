"""The vector side of search returns its candidates whatever share of the chunks table a
workspace holds (issue 17): against the real Postgres and pgvector, one HNSW index for all.

A workspace of a few dozen chunks sits beside one of thousands. With pgvector's plain HNSW
scan (the search before pgvector 0.8's iterative scans) the graph walk stopped after
`hnsw.ef_search` (40) rows, nearly all of the big workspace's, and the filter left the
small one one or two hits or none. Each check runs twice: with the plan the planner picks,
and with the HNSW scan forced (no btree on workspace_id, no sequential scan), which is the
plan it picks when its statistics take a small workspace for a big one.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import AsyncConnection

from rag_api.search import CANDIDATES, Hit, rank_chunks
from rag_api.search_filters import SearchFilters
from rag_testing.pytest_plugin import cloned_database

pytestmark = pytest.mark.anyio

MODEL = "test-model"
BIG = 3_000  # chunks of the big workspace
SMALL = 60  # chunks of the small one: 2 % of the table, more than CANDIDATES
NO_FILTERS = SearchFilters()
NO_WORDS = "zzzz"  # a query text matching no chunk's words: every hit comes from the vector side

# N random unit vectors of the model's 384 dimensions, made by the server (reproducible
# with setseed), for chunk ordinals 0..N-1 of one document.
FILL = """
INSERT INTO chunks (document_id, workspace_id, ordinal, text, char_start, char_end,
                    embedding_model, embedding_dim, embedding)
SELECT %(document)s, %(workspace)s, g, 'chunk ' || g, 0, 10, %(model)s, 384,
       l2_normalize(ARRAY(SELECT random_normal() FROM generate_series(1, 384) WHERE g >= 0)::vector)
FROM generate_series(0, %(n)s - 1) g
"""

EXACT = """
SELECT id FROM chunks
WHERE workspace_id = %(workspace)s AND embedding_model = %(model)s
ORDER BY embedding <=> %(vector)s::vector, id
LIMIT %(k)s
"""


def add_workspace(conn: psycopg.Connection[tuple[object, ...]], chunks: int, documents: int = 1) -> uuid.UUID:
    """A workspace with `documents` documents of `chunks` random chunks in all."""
    workspace = uuid.uuid4()
    conn.execute(
        "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)", (workspace, uuid.uuid4())
    )
    per_document = [chunks // documents + (1 if i < chunks % documents else 0) for i in range(documents)]
    for n in per_document:
        row = conn.execute(
            "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256, status)"
            " VALUES (%s, 'f.txt', 'text/plain', 1, %s, 'ingested') RETURNING id",
            (workspace, uuid.uuid4().hex * 2),
        ).fetchone()
        assert row is not None
        if n:
            conn.execute(FILL, {"document": row[0], "workspace": workspace, "model": MODEL, "n": n})
    return workspace


@pytest.fixture(scope="module")
def shares_db(pg_admin_dsn: str) -> Iterator[tuple[str, dict[str, uuid.UUID]]]:
    """A database of the module's own: the big workspace, a small one (2 % of the chunks), a
    tiny one (3 chunks), an empty one. The HNSW index (migration 0001's) is built after the
    rows are in: one build is much faster than 3,000 inserts into the graph."""
    with cloned_database(pg_admin_dsn, "rag_shares") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP INDEX chunks_embedding_idx")
            conn.execute("SELECT setseed(0.17)")
            made = {
                "big": add_workspace(conn, BIG, documents=30),
                "small": add_workspace(conn, SMALL),
                "tiny": add_workspace(conn, 3),
                "empty": add_workspace(conn, 0),
            }
            conn.execute(
                "CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops)"
            )
            conn.execute("VACUUM ANALYZE chunks")
        yield dsn, made


def query_vector(seed: int) -> str:
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(384)]
    norm = sum(v * v for v in values) ** 0.5
    return "[" + ",".join(f"{v / norm:.7f}" for v in values) + "]"


@contextlib.asynccontextmanager
async def connection(dsn: str, *, force_hnsw: bool) -> AsyncIterator[AsyncConnection[tuple[object, ...]]]:
    """An autocommit connection, as the api's pool gives; with `force_hnsw`, one on which the
    planner can only reach a workspace's chunks through the HNSW index (the btree on
    workspace_id dropped, sequential scans priced out), in a transaction rolled back after."""
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        if not force_hnsw:
            yield conn
            return
        async with conn.transaction(force_rollback=True):
            await conn.execute("DROP INDEX chunks_workspace_idx")
            await conn.execute("SET LOCAL enable_seqscan = off")
            yield conn


def exact(dsn: str, workspace: uuid.UUID, vector: str, k: int) -> list[int]:
    """The workspace's `k` nearest chunks by a full scan (index scans off)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET LOCAL enable_indexscan = off")
        rows = conn.execute(
            EXACT, {"workspace": workspace, "model": MODEL, "vector": vector, "k": k}
        ).fetchall()
    return [int(r[0]) for r in rows]


async def vector_hits(
    conn: AsyncConnection[tuple[object, ...]],
    workspace: uuid.UUID,
    vector: str,
    k: int,
    filters: SearchFilters = NO_FILTERS,
) -> list[Hit]:
    return await rank_chunks(conn, MODEL, vector, workspace, NO_WORDS, k, filters)


@pytest.mark.parametrize("force_hnsw", [False, True], ids=["planner's plan", "hnsw scan"])
async def test_a_workspace_holding_two_percent_of_the_chunks_gets_its_k_nearest(
    shares_db: tuple[str, dict[str, uuid.UUID]], force_hnsw: bool
) -> None:
    database_url, tables = shares_db
    small = tables["small"]
    for seed in range(5):
        vector = query_vector(seed)
        truth = exact(database_url, small, vector, 10)
        async with connection(database_url, force_hnsw=force_hnsw) as conn:
            hits = await vector_hits(conn, small, vector, 10)
        assert len(hits) == 10
        # Approximate search: at least 9 of the 10 true nearest, and nothing of another workspace.
        assert len({h.chunk_id for h in hits} & set(truth)) >= 9, (seed, [h.chunk_id for h in hits], truth)


@pytest.mark.parametrize("force_hnsw", [False, True], ids=["planner's plan", "hnsw scan"])
async def test_at_the_largest_k_every_candidate_comes_back(
    shares_db: tuple[str, dict[str, uuid.UUID]], force_hnsw: bool
) -> None:
    database_url, tables = shares_db
    """k = 50 (the api's maximum): the plain scan's ef_search of 40 could not reach it even
    in a workspace holding the whole table."""
    for name in ("small", "big"):
        async with connection(database_url, force_hnsw=force_hnsw) as conn:
            hits = await vector_hits(conn, tables[name], query_vector(7), CANDIDATES)
        assert len(hits) == CANDIDATES, name


@pytest.mark.parametrize("force_hnsw", [False, True], ids=["planner's plan", "hnsw scan"])
async def test_tiny_and_empty_workspaces_get_all_they_hold(
    shares_db: tuple[str, dict[str, uuid.UUID]], force_hnsw: bool
) -> None:
    database_url, tables = shares_db
    """Fewer chunks than candidates: every chunk, in exact order; an empty workspace: none."""
    vector = query_vector(3)
    async with connection(database_url, force_hnsw=force_hnsw) as conn:
        tiny = await vector_hits(conn, tables["tiny"], vector, 10)
        empty = await vector_hits(conn, tables["empty"], vector, 10)
    assert [h.chunk_id for h in tiny] == exact(database_url, tables["tiny"], vector, 10)
    assert len(tiny) == 3
    assert empty == []


@pytest.mark.parametrize("force_hnsw", [False, True], ids=["planner's plan", "hnsw scan"])
async def test_a_filter_as_narrow_as_a_small_workspace_still_gets_its_hits(
    shares_db: tuple[str, dict[str, uuid.UUID]], force_hnsw: bool
) -> None:
    database_url, tables = shares_db
    """One document of the big workspace (100 of its 3,000 chunks): the filter, checked on the
    rows the graph walk yields like the workspace, leaves its candidates."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT document_id, count(*) FROM chunks WHERE workspace_id = %s GROUP BY 1 ORDER BY 1 LIMIT 1",
            (tables["big"],),
        ).fetchone()
    assert row is not None and row[1] == 100
    document = uuid.UUID(str(row[0]))
    async with connection(database_url, force_hnsw=force_hnsw) as conn:
        hits = await vector_hits(
            conn, tables["big"], query_vector(11), 10, SearchFilters(document_ids=(document,))
        )
    assert len(hits) == 10
    assert {h.document_id for h in hits} == {document}


async def test_the_scan_settings_hold_for_the_statement_only(
    shares_db: tuple[str, dict[str, uuid.UUID]],
) -> None:
    database_url, tables = shares_db
    """The iterative scan is set inside the statement: the pool's connection keeps its defaults."""
    async with connection(database_url, force_hnsw=False) as conn:
        await vector_hits(conn, tables["small"], query_vector(1), 10)
        cur = await conn.execute(
            "SELECT current_setting('hnsw.iterative_scan'), current_setting('hnsw.ef_search'),"
            " current_setting('hnsw.max_scan_tuples')"
        )
        assert await cur.fetchone() == ("off", "40", "20000")
