"""Search filters (document, content type, creation window): in the SQL on the real Postgres,
and through a real api process for every refusal (docs/api.md "Search")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rag_api.search import hybrid_search
from rag_api.search_filters import MAX_FILTER_VALUES, SearchFilters, parse_filters, parse_timestamp
from rag_embedding import HashEmbedder, vector_literal

from .conftest import Api, ApiUser

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PDF = "application/pdf"
TXT = "text/plain"


async def seed_document(
    dsn: str,
    workspace: uuid.UUID,
    name: str,
    texts: list[str],
    *,
    content_type: str = TXT,
    created_at: datetime = T0,
) -> uuid.UUID:
    """A document of `workspace` (created if need be) with one chunk per text."""
    embedder = HashEmbedder()
    vectors = await embedder.embed(texts)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'w', %s) ON CONFLICT DO NOTHING",
            (workspace, uuid.uuid4()),
        )
        row = conn.execute(
            "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256, status, created_at)"
            " VALUES (%s, %s, %s, 1, %s, 'ingested', %s) RETURNING id",
            (workspace, name, content_type, uuid.uuid4().hex * 2, created_at),
        ).fetchone()
        assert row is not None
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO chunks (document_id, workspace_id, ordinal, text, char_start, char_end,"
                " embedding_model, embedding_dim, embedding) VALUES (%s, %s, %s, %s, 0, %s, %s, 384, %s::vector)",
                [
                    (row[0], workspace, n, text, len(text), embedder.model_name, vector_literal(vector))
                    for n, (text, vector) in enumerate(zip(texts, vectors, strict=True))
                ],
            )
    return uuid.UUID(str(row[0]))


async def found(dsn: str, workspace: uuid.UUID, q: str, filters: SearchFilters, k: int = 10) -> list[str]:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=1, open=False) as pool:
        return [h.filename for h in await hybrid_search(pool, HashEmbedder(), workspace, q, k, filters)]


async def test_each_filter_narrows_both_rankings(database_url: str) -> None:
    ws = uuid.uuid4()
    docs = {
        "march.txt": await seed_document(database_url, ws, "march.txt", ["Glaciers melt in spring."]),
        "april.pdf": await seed_document(
            database_url,
            ws,
            "april.pdf",
            ["Glaciers calve icebergs."],
            content_type=PDF,
            created_at=T0 + timedelta(days=31),
        ),
        "may.pdf": await seed_document(
            database_url,
            ws,
            "may.pdf",
            ["Glaciers carve fjords."],
            content_type=PDF,
            created_at=T0 + timedelta(days=61),
        ),
    }

    async def names(filters: SearchFilters) -> set[str]:
        return set(await found(database_url, ws, "glaciers", filters))

    assert await names(SearchFilters()) == set(docs)
    assert await names(SearchFilters(document_ids=(docs["may.pdf"], docs["march.txt"]))) == {
        "may.pdf",
        "march.txt",
    }
    assert await names(SearchFilters(content_types=(PDF,))) == {"april.pdf", "may.pdf"}
    assert await names(SearchFilters(content_types=(TXT, PDF))) == set(docs)
    assert await names(SearchFilters(content_types=("text/csv",))) == set()
    # The window is half-open: created_after inclusive, created_before exclusive.
    april = T0 + timedelta(days=31)
    assert await names(SearchFilters(created_after=april)) == {"april.pdf", "may.pdf"}
    assert await names(SearchFilters(created_before=april)) == {"march.txt"}
    assert await names(SearchFilters(created_after=april, created_before=april + timedelta(seconds=1))) == {
        "april.pdf"
    }
    assert await names(SearchFilters(created_after=april, created_before=april)) == set()
    # Filters combine with AND.
    assert await names(SearchFilters(document_ids=(docs["march.txt"],), content_types=(PDF,))) == set()
    assert await names(
        SearchFilters(document_ids=(docs["may.pdf"],), content_types=(PDF,), created_after=april)
    ) == {"may.pdf"}


async def test_another_workspaces_document_id_matches_nothing(database_url: str) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    await seed_document(database_url, mine, "mine.txt", ["Quarterly revenue grew by twelve percent."])
    secret = await seed_document(database_url, other, "secret.txt", ["Quarterly revenue grew in secret."])
    assert await found(database_url, mine, "quarterly revenue", SearchFilters(document_ids=(secret,))) == []
    # ... nor does a window or a type reach into the other workspace.
    assert await found(database_url, mine, "secret", SearchFilters(content_types=(TXT,))) == ["mine.txt"]


async def test_a_filtered_search_still_returns_k_hits_when_k_chunks_match(database_url: str) -> None:
    """The filters sit inside both rankings, before their candidate limits: a document of 5
    chunks among 400 chunks of another still gives 5 hits, though none shares a word with the
    query (only the vector ranking finds them) and 400 others come first without the filter."""
    ws = uuid.uuid4()
    await seed_document(
        database_url, ws, "big.txt", [f"filler passage number {n} about nothing" for n in range(400)]
    )
    small = await seed_document(
        database_url, ws, "small.pdf", [f"lorem {n} ipsum" for n in range(5)], content_type=PDF
    )
    query = "completely unrelated words"
    assert (
        await found(database_url, ws, query, SearchFilters(document_ids=(small,)), k=5) == ["small.pdf"] * 5
    )
    assert await found(database_url, ws, query, SearchFilters(content_types=(PDF,)), k=5) == ["small.pdf"] * 5
    assert (
        await found(database_url, ws, query, SearchFilters(content_types=(PDF,)), k=10) == ["small.pdf"] * 5
    )


def test_timestamps_are_rfc_3339_with_an_offset() -> None:
    assert parse_timestamp("2026-03-01T12:00:00Z", "t") == T0
    assert parse_timestamp("2026-03-01t13:30:00.5+01:30", "t") == T0 + timedelta(microseconds=500_000)
    assert parse_timestamp("2026-03-01T12:00:00.123456789z", "t") == T0 + timedelta(microseconds=123_456)
    assert parse_timestamp("2016-12-31T23:59:60Z", "t") == datetime(
        2016, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC
    )
    for bad in (
        "2026-03-01",
        "2026-03-01T12:00:00",
        "2026-02-30T00:00:00Z",
        "2026-03-01 12:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-03-01T25:00:00Z",
        "2026-03-01T12:00:00+24:00",
        "yesterday",
        "２０２６-03-01T12:00:00Z",
    ):
        with pytest.raises(Exception, match=r"RFC 3339|not a valid date") as info:
            parse_timestamp(bad, "created_after")
        assert getattr(info.value, "status", None) == 400, bad


def test_stored_filters_read_back_the_same() -> None:
    filters = parse_filters(
        {
            "document_id": [str(uuid.UUID(int=1)), str(uuid.UUID(int=1)), str(uuid.UUID(int=2))],
            "content_type": [PDF, PDF],
            "created_after": "2026-03-01T13:00:00+01:00",
        }
    )
    assert filters == SearchFilters(
        (uuid.UUID(int=1), uuid.UUID(int=2)), (PDF,), T0, None
    )  # repeats count once
    assert SearchFilters.from_json(filters.as_json()) == filters
    assert SearchFilters().as_json() is None and SearchFilters.from_json(None) == SearchFilters()


# Through the api: every bad filter is 400 invalid_parameter in the error shape (422 for a NUL).

DOC = str(uuid.UUID(int=7))
BAD_QUERIES: list[tuple[list[tuple[str, str]], str]] = [
    ([("document_id", "not-a-uuid")], "UUID"),
    ([("document_id", DOC + "0")], "UUID"),
    ([("document_id", DOC.replace("-", ""))], "UUID"),
    ([("document_id", str(uuid.uuid4())) for _ in range(MAX_FILTER_VALUES + 1)], "At most"),
    ([("content_type", "text/x-unknown")], "one of"),
    ([("content_type", "TEXT/PLAIN")], "one of"),
    ([("content_type", "x" * 10_000)], "one of"),
    ([("created_after", "yesterday")], "RFC 3339"),
    ([("created_before", "2026-03-01T12:00:00")], "RFC 3339"),
    ([("created_after", "2026-03-01T12:00:00Z"), ("created_after", "2026-03-02T12:00:00Z")], "once"),
    ([("created_after", "2026-03-02T12:00:00Z"), ("created_before", "2026-03-01T12:00:00Z")], "later"),
]


@pytest.fixture
def member(shared_api: Api) -> Iterator[tuple[ApiUser, str]]:
    user = shared_api.user()
    yield user, user.create_workspace("filters")["id"]


@pytest.mark.parametrize(("params", "says"), BAD_QUERIES, ids=[f"q{n}" for n in range(len(BAD_QUERIES))])
def test_a_bad_search_filter_is_400_invalid_parameter(
    member: tuple[ApiUser, str], params: list[tuple[str, str]], says: str
) -> None:
    user, workspace = member
    response = user.client.get(f"/api/workspaces/{workspace}/search", params=[("q", "cod"), *params])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and says in error["message"], error
    assert len(error["message"]) < 600  # a huge value is not echoed whole


def test_search_filter_edge_values(shared_api: Api, member: tuple[ApiUser, str]) -> None:
    user, workspace = member
    path = f"/api/workspaces/{workspace}/search"
    nul = user.client.get(path, params={"q": "cod", "document_id": DOC + "\x00"})
    assert nul.status_code == 422 and nul.json()["error"]["code"] == "validation_error"
    # Empty values are absent (as for every parameter); exactly the limit is accepted;
    # another workspace's id (or an unknown one) matches nothing.
    for params in (
        [("document_id", ""), ("content_type", ""), ("created_after", "")],
        [("document_id", str(uuid.uuid4())) for _ in range(MAX_FILTER_VALUES)],
        [("content_type", PDF)] * MAX_FILTER_VALUES,
        [("created_after", "2026-03-01T12:00:00Z"), ("created_before", "2026-03-01T12:00:00Z")],
    ):
        response = user.client.get(path, params=[("q", "cod"), *params])
        assert response.status_code == 200, response.text
        assert response.json() == {"items": []}
    # 1,000 ids (a 40 KB URL) reach the api and are refused in the error shape.
    many = user.client.get(
        path, params=[("q", "cod"), *[("document_id", str(uuid.uuid4())) for _ in range(1000)]]
    )
    assert many.status_code == 400, many.text
    assert many.json()["error"] == {
        "code": "invalid_parameter",
        "message": f"At most {MAX_FILTER_VALUES} 'document_id' values are accepted; got 1000.",
    }


BAD_BODIES: list[tuple[Any, str]] = [
    ("document_id", "must be an object"),
    ([DOC], "must be an object"),
    ({"document": [DOC]}, "Unknown key"),
    ({"document_id": DOC}, "array of strings"),
    ({"document_id": [7]}, "array of strings"),
    ({"document_id": ["nope"]}, "UUID"),
    ({"document_id": [str(uuid.uuid4()) for _ in range(1000)]}, "At most"),
    ({"content_type": ["image/gif"]}, "one of"),
    ({"created_after": 1767225600}, "a string"),
    ({"created_before": ""}, "RFC 3339"),  # in JSON an empty string is a value, not an absence
    ({"document_id": [""]}, "UUID"),
    ({"created_after": "2026-03-02T12:00:00Z", "created_before": "2026-03-01T12:00:00Z"}, "later"),
]


@pytest.mark.parametrize(("filters", "says"), BAD_BODIES, ids=[f"b{n}" for n in range(len(BAD_BODIES))])
def test_a_question_with_bad_filters_is_400_and_writes_nothing(
    shared_api: Api, member: tuple[ApiUser, str], filters: Any, says: str
) -> None:
    user, workspace = member
    conversation = user.client.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
        "id"
    ]
    response = user.client.post(
        f"/api/conversations/{conversation}/messages", json={"content": "cod?", "filters": filters}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and says in error["message"], error
    assert shared_api.sql("SELECT count(*) FROM messages WHERE conversation_id = %s", (conversation,)) == [
        (0,)
    ]
    assert shared_api.sql("SELECT count(*) FROM answer_jobs WHERE conversation_id = %s", (conversation,)) == [
        (0,)
    ]


def test_a_questions_filters_are_stored_with_its_answer_job(
    shared_api: Api, member: tuple[ApiUser, str]
) -> None:
    user, workspace = member
    conversation = user.client.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
        "id"
    ]
    path = f"/api/conversations/{conversation}/messages"
    nul = user.client.post(path, json={"content": "cod?", "filters": {"content_type": ["text/plain\x00"]}})
    assert nul.status_code == 422
    posted = user.client.post(
        path,
        json={
            "content": "cod?",
            "filters": {"content_type": [PDF], "created_before": "2026-03-01T12:00:00Z"},
        },
    )
    assert posted.status_code == 201, posted.text
    plain = user.client.post(path, json={"content": "cod?", "filters": None})
    assert plain.status_code == 201, plain.text
    stored = shared_api.sql(
        "SELECT filters FROM answer_jobs WHERE conversation_id = %s ORDER BY created_at", (conversation,)
    )
    assert [SearchFilters.from_json(row[0]) for row in stored] == [
        SearchFilters(content_types=(PDF,), created_before=T0),
        SearchFilters(),
    ]
