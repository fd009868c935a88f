"""Hybrid search SQL against the real Postgres with pgvector."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rag_api.search import hybrid_search
from rag_embedding import HashEmbedder, vector_literal

pytestmark = pytest.mark.anyio

PASSAGES = {
    "volcano.txt": "Volcanic eruptions release ash and sulfur dioxide high into the stratosphere.",
    "bread.txt": "Sourdough bread rises slowly because wild yeast ferments the dough overnight.",
    "tides.txt": "Ocean tides follow the gravitational pull of the moon and, to a lesser degree, the sun.",
}


async def seed(dsn: str, workspace: uuid.UUID, passages: dict[str, str], model: str | None = None) -> None:
    embedder = HashEmbedder()
    vectors = await embedder.embed(list(passages.values()))
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s) ON CONFLICT DO NOTHING",
            (workspace, uuid.uuid4()),
        )
        for (name, text), vector in zip(passages.items(), vectors, strict=True):
            doc = conn.execute(
                "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256, status)"
                " VALUES (%s, %s, 'text/plain', 1, %s, 'ingested') RETURNING id",
                (workspace, name, uuid.uuid4().hex * 2),
            ).fetchone()
            assert doc is not None
            conn.execute(
                "INSERT INTO chunks (document_id, workspace_id, ordinal, text, char_start, char_end,"
                " embedding_model, embedding_dim, embedding) VALUES (%s, %s, 0, %s, 0, %s, %s, 384, %s::vector)",
                (doc[0], workspace, text, len(text), model or embedder.model_name, vector_literal(vector)),
            )


async def search(dsn: str, workspace: uuid.UUID, q: str, k: int = 10) -> list[str]:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=1, open=False) as pool:
        return [h.filename for h in await hybrid_search(pool, HashEmbedder(), workspace, q, k)]


async def test_a_sentence_finds_its_document_first(database_url: str) -> None:
    ws = uuid.uuid4()
    await seed(database_url, ws, PASSAGES)
    for name, text in PASSAGES.items():
        assert (await search(database_url, ws, text))[0] == name


async def test_partial_wording_still_ranks_by_shared_terms(database_url: str) -> None:
    ws = uuid.uuid4()
    await seed(database_url, ws, PASSAGES)
    assert (await search(database_url, ws, "why does the moon cause tides?"))[0] == "tides.txt"
    assert (await search(database_url, ws, "yeast", k=1)) == ["bread.txt"]


async def test_search_never_crosses_workspaces(database_url: str) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    await seed(database_url, mine, {"mine.txt": "Quarterly revenue grew by twelve percent."})
    await seed(database_url, other, {"secret.txt": "Quarterly revenue grew by twelve percent in secret."})
    assert await search(database_url, mine, "quarterly revenue") == ["mine.txt"]


async def test_chunks_of_another_model_stay_out_of_the_vector_ranking(database_url: str) -> None:
    ws = uuid.uuid4()
    await seed(database_url, ws, {"old.txt": "zzz qqq"}, model="some-old-model")
    # No shared word and another model: it must not appear at all.
    assert await search(database_url, ws, "tides of the ocean") == []


async def test_a_hit_says_where_it_is_page_and_character_range(database_url: str) -> None:
    """A viewer jumps to a hit by its page and its range in the parsed text: a chunk's stored
    page; page 1 for a paged document whose text had no page break (a one-page PDF); null for
    a document without pages."""
    ws = uuid.uuid4()
    embedder = HashEmbedder()
    texts = {
        "report.pdf": ("Glaciers retreat faster in warm summers.", 3, 4),
        "leaflet.pdf": ("Glaciers carve valleys over millennia.", None, 1),
        "notes.txt": ("Glaciers store most of the fresh water.", None, None),
    }
    vectors = await embedder.embed([t for t, _, _ in texts.values()])
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s)", (ws, uuid.uuid4()))
        for (name, (text, page, page_count)), vector in zip(texts.items(), vectors, strict=True):
            doc = conn.execute(
                "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256, status,"
                " page_count) VALUES (%s, %s, 'text/plain', 1, %s, 'ingested', %s) RETURNING id",
                (ws, name, uuid.uuid4().hex * 2, page_count),
            ).fetchone()
            assert doc is not None
            conn.execute(
                "INSERT INTO chunks (document_id, workspace_id, ordinal, text, char_start, char_end, page,"
                " embedding_model, embedding_dim, embedding)"
                " VALUES (%s, %s, 2, %s, 1000, %s, %s, %s, 384, %s::vector)",
                (doc[0], ws, text, 1000 + len(text), page, embedder.model_name, vector_literal(vector)),
            )
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        hits = await hybrid_search(pool, embedder, ws, "glaciers", 10)
    where = {h.filename: (h.page, h.char_start, h.char_end) for h in hits}
    assert where == {
        "report.pdf": (3, 1000, 1040),
        "leaflet.pdf": (1, 1000, 1038),
        "notes.txt": (None, 1000, 1039),
    }
    assert {k: hits[0].as_json()[k] for k in ("page", "char_start", "char_end")} == dict(
        zip(("page", "char_start", "char_end"), where[hits[0].filename], strict=True)
    )
