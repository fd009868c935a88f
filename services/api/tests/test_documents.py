"""Documents: get, jobs, list with cursor pages and status filter, reprocess, delete; 404 for strangers."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from rag_core.queues import INGEST_QUEUE
from rag_core.storage_keys import parsed_key
from rag_testing.jobs import enqueue_sync

JOB_KEYS = {
    "id",
    "job_type",
    "document_id",
    "status",
    "attempt",
    "max_attempts",
    "error",
    "run_at",
    "created_at",
    "started_at",
    "finished_at",
}


def upload_one(
    user: Any, workspace_id: str, name: str = "doc.txt", data: bytes | None = None
) -> dict[str, Any]:
    payload = data if data is not None else f"content of {name} {uuid.uuid4()}".encode()
    response = user.upload(workspace_id, [(name, payload)])
    assert response.status_code == 201, response.text
    doc: dict[str, Any] = response.json()["documents"][0]
    return doc


def test_get_document_and_jobs(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()["id"]
    doc = upload_one(owner, ws)
    got = owner.client.get(f"/api/documents/{doc['id']}")
    assert got.status_code == 200
    expected = {k: v for k, v in doc.items() if k not in ("parse_job_id", "duplicate")}
    assert got.json() == expected
    jobs = owner.client.get(f"/api/documents/{doc['id']}/jobs").json()["items"]
    assert len(jobs) == 1 and set(jobs[0]) == JOB_KEYS
    job = jobs[0]
    assert (job["id"], job["job_type"], job["status"], job["attempt"], job["max_attempts"]) == (
        doc["parse_job_id"],
        "parse",
        "queued",
        0,
        3,
    )
    assert job["error"] is None and job["started_at"] is None and job["document_id"] == doc["id"]


def test_strangers_get_404_everywhere(shared_api: Any) -> None:
    owner, stranger = shared_api.user(), shared_api.user()
    ws = owner.create_workspace()["id"]
    doc = upload_one(owner, ws)
    for method, path in [
        ("GET", f"/api/documents/{doc['id']}"),
        ("GET", f"/api/documents/{doc['id']}/jobs"),
        ("POST", f"/api/documents/{doc['id']}/reprocess"),
        ("DELETE", f"/api/documents/{doc['id']}"),
        ("GET", f"/api/workspaces/{ws}/documents"),
        ("GET", f"/api/documents/{uuid.uuid4()}"),
        ("GET", f"/api/workspaces/{uuid.uuid4()}/documents"),
    ]:
        response = stranger.client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    # A missing document and a stranger's one read the same.
    hidden = stranger.client.get(f"/api/documents/{doc['id']}").json()
    missing = owner.client.get(f"/api/documents/{uuid.uuid4()}").json()
    assert hidden == missing
    assert owner.client.get(f"/api/documents/{doc['id']}").status_code == 200
    assert len(shared_api.s3_keys(f"workspaces/{ws}/")) == 1


def test_list_pagination_and_status_filter(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()["id"]
    uploaded = [upload_one(owner, ws, f"doc{i}.txt") for i in range(5)]
    newest_first = [d["id"] for d in reversed(uploaded)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = owner.client.get(f"/api/workspaces/{ws}/documents", params=params).json()
        seen += [d["id"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first and pages == 3
    everything = owner.client.get(f"/api/workspaces/{ws}/documents").json()
    assert [d["id"] for d in everything["items"]] == newest_first and everything["next_cursor"] is None

    shared_api.sql(
        "UPDATE documents SET status = 'error', error = 'boom' WHERE id = %s", (uploaded[2]["id"],)
    )
    failed = owner.client.get(f"/api/workspaces/{ws}/documents", params={"status": "error"}).json()
    assert [(d["id"], d["error"]) for d in failed["items"]] == [(uploaded[2]["id"], "boom")]
    queued = owner.client.get(f"/api/workspaces/{ws}/documents", params={"status": "queued"}).json()
    assert len(queued["items"]) == 4


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"limit": "²"},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJ4IiwieSJd"},  # valid base64 of ["x","y"]
    ],
)
def test_list_parameter_validation(shared_api: Any, params: dict[str, str]) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()["id"]
    response = owner.client.get(f"/api/workspaces/{ws}/documents", params=params)
    assert response.status_code == 400, response.text
    expected = "invalid_cursor" if "cursor" in params else "invalid_parameter"
    assert response.json()["error"]["code"] == expected


def test_reprocess(shared_api: Any) -> None:
    owner, member = shared_api.user(), shared_api.user()
    ws = owner.create_workspace()["id"]
    owner.add_member(ws, member.id)
    doc = upload_one(owner, ws)

    busy = member.client.post(f"/api/documents/{doc['id']}/reprocess")
    assert (busy.status_code, busy.json()["error"]["code"]) == (409, "job_in_progress")
    # The parse job ran and failed for good: the document is in error.
    shared_api.sql(
        "UPDATE parse_jobs SET status = 'failed', attempt = 3, last_error = 'corrupt' WHERE document_id = %s",
        (doc["id"],),
    )
    shared_api.sql(
        "UPDATE documents SET status = 'error', error = 'corrupt file' WHERE id = %s", (doc["id"],)
    )
    before = shared_api.sql("SELECT coalesce(max(id), 0) FROM events WHERE user_id = %s", (member.id,))[0][0]

    with psycopg.connect(shared_api.database_url, autocommit=True) as listen:
        listen.execute("LISTEN parse_jobs")
        response = member.client.post(f"/api/documents/{doc['id']}/reprocess")
        assert response.status_code == 202, response.text
        notices = [n.payload for n in listen.notifies(timeout=5, stop_after=1)]
    body = response.json()
    assert (body["id"], body["status"], body["error"]) == (doc["id"], "queued", None)
    new_job = body["parse_job_id"]
    assert new_job != doc["parse_job_id"] and notices == [new_job]

    jobs = owner.client.get(f"/api/documents/{doc['id']}/jobs").json()["items"]
    assert [(j["id"], j["status"], j["error"]) for j in jobs] == [
        (doc["parse_job_id"], "failed", "corrupt"),
        (new_job, "queued", None),
    ]
    events = shared_api.sql(
        "SELECT id, type, payload FROM events WHERE user_id = %s AND id > %s ORDER BY id", (member.id, before)
    )
    assert [(e[0] - before, e[1]) for e in events] == [
        (1, "document.status_updated"),
        (2, "job.status_updated"),
    ]
    assert events[0][2] == {"document_id": doc["id"], "workspace_id": ws, "status": "queued", "error": None}
    assert (events[1][2]["job_id"], events[1][2]["status"], events[1][2]["attempt"]) == (new_job, "queued", 0)
    # And it is busy again.
    assert member.client.post(f"/api/documents/{doc['id']}/reprocess").status_code == 409
    # A running ingest job blocks it too.
    shared_api.sql("UPDATE parse_jobs SET status = 'success' WHERE document_id = %s", (doc["id"],))
    enqueue_sync(
        shared_api.database_url,
        INGEST_QUEUE,
        {"document_id": doc["id"], "workspace_id": ws, "status": "running"},
    )
    assert member.client.post(f"/api/documents/{doc['id']}/reprocess").status_code == 409


def test_delete_removes_rows_objects_and_publishes(shared_api: Any) -> None:
    owner, member = shared_api.user(), shared_api.user()
    ws = owner.create_workspace()["id"]
    owner.add_member(ws, member.id)
    doc, keep = upload_one(owner, ws, "gone.txt", b"gone content"), upload_one(owner, ws, "kept.txt")
    # What the workers would have added: a parsed file, an ingest job, chunks.
    parsed = parsed_key(uuid.UUID(ws), uuid.UUID(doc["id"]))
    shared_api.s3().put_object(Bucket=shared_api.bucket, Key=parsed, Body=b"parsed")
    shared_api.sql(
        "INSERT INTO files (document_id, kind, bucket, object_key, size_bytes, content_type) "
        "VALUES (%s, 'parsed', %s, %s, 6, 'text/plain')",
        (doc["id"], shared_api.bucket, parsed),
    )
    enqueue_sync(
        shared_api.database_url,
        INGEST_QUEUE,
        {"document_id": doc["id"], "workspace_id": ws, "status": "success"},
    )
    shared_api.sql(
        "INSERT INTO chunks (document_id, workspace_id, ordinal, text, char_start, char_end, embedding_model, "
        "embedding_dim, embedding) VALUES (%s, %s, 0, 'text', 0, 4, 'hash', 384, array_fill(0.1, ARRAY[384])::vector)",
        (doc["id"], ws),
    )

    response = member.client.delete(f"/api/documents/{doc['id']}")
    assert response.status_code == 204 and response.content == b""
    assert owner.client.get(f"/api/documents/{doc['id']}").status_code == 404
    for table in ("documents", "files", "parse_jobs", "ingest_jobs", "chunks"):
        column = "id" if table == "documents" else "document_id"
        count = shared_api.sql(f"SELECT count(*) FROM {table} WHERE {column} = %s", (doc["id"],))[0][0]
        assert count == 0, table
    assert shared_api.s3_keys(f"workspaces/{ws}/") == [f"workspaces/{ws}/documents/{keep['id']}/original"]
    for user in (owner, member):
        [(payload,)] = shared_api.sql(
            "SELECT payload FROM events WHERE user_id = %s AND type = 'document.deleted'", (user.id,)
        )
        assert payload == {"document_id": doc["id"], "workspace_id": ws}
    assert member.client.delete(f"/api/documents/{doc['id']}").status_code == 404
    # The same content may be uploaded again once deleted.
    again = owner.upload(ws, [("gone.txt", b"gone content")])
    assert again.status_code == 201 and again.json()["documents"][0]["duplicate"] is False
