"""DB_STATEMENT_TIMEOUT_SECONDS against a real api: a query stuck past it is 503 `database_timeout`.

A second connection holds row locks a route needs (as a runaway transaction or a slow
migration would); with the timeout set to 1 s the route answers 503 database_timeout
in about a second instead of holding its pool connection forever, and the api serves
every other request meanwhile and afterwards.
"""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest

from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import System


@pytest.fixture
def strict_system(system_factory: SystemFactory) -> System:
    system = system_factory(workers=False, DB_STATEMENT_TIMEOUT_SECONDS="1")
    return system


def timed_status(response_of: httpx.Response, started: float) -> tuple[int, str, float]:
    body = response_of.json() if response_of.content else {}
    return response_of.status_code, body.get("error", {}).get("code", ""), time.monotonic() - started


def test_a_query_stuck_on_a_lock_is_503_database_timeout_and_the_api_keeps_serving(
    strict_system: System,
) -> None:
    owner = uuid.uuid4()
    client = strict_system.client(owner)
    workspace = client.post("/api/workspaces", json={"name": "locked"}).json()["id"]
    uploaded = client.post(
        f"/api/workspaces/{workspace}/documents/upload",
        files=[("files", ("a.txt", b"some text\n", "text/plain"))],
    )
    document = uploaded.json()["documents"][0]["id"]

    with psycopg.connect(strict_system.env["DATABASE_URL"]) as holder:  # one open transaction
        holder.execute("SELECT 1 FROM workspaces WHERE id = %s FOR UPDATE", (workspace,))
        holder.execute("SELECT 1 FROM documents WHERE id = %s FOR UPDATE", (document,))

        started = time.monotonic()
        add = client.post(f"/api/workspaces/{workspace}/members", json={"user_id": str(uuid.uuid4())})
        status, code, elapsed = timed_status(add, started)
        assert (status, code) == (503, "database_timeout"), add.text
        assert 0.8 <= elapsed < 6, elapsed

        started = time.monotonic()
        status, code, elapsed = timed_status(client.delete(f"/api/documents/{document}"), started)
        assert (status, code) == (503, "database_timeout")
        assert elapsed < 6

        # Everything that does not need the locked rows is served normally, at once.
        for _ in range(20):
            started = time.monotonic()
            assert client.get("/api/workspaces").status_code == 200
            assert client.get(f"/api/documents/{document}").status_code == 200
            assert time.monotonic() - started < 2
        holder.rollback()

    # Released: the same requests succeed; the cancelled statements left no broken connection.
    assert (
        client.post(f"/api/workspaces/{workspace}/members", json={"user_id": str(uuid.uuid4())}).status_code
        == 201
    )
    assert client.delete(f"/api/documents/{document}").status_code == 204
    for _ in range(20):
        assert client.get(f"/api/workspaces/{workspace}/documents").status_code == 200
    with psycopg.connect(strict_system.env["DATABASE_URL"], autocommit=True) as conn:
        members = conn.execute("SELECT count(*) FROM workspace_members WHERE workspace_id = %s", (workspace,))
        assert members.fetchone() == (2,)  # the timed-out add wrote nothing


def test_answer_jobs_sharing_the_pool_still_complete(strict_system: System) -> None:
    """The timeout is per statement: a whole answer job (many short statements) is not cut."""
    client = strict_system.client(uuid.uuid4())
    workspace = client.post("/api/workspaces", json={"name": "answers"}).json()["id"]
    conversation = client.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()["id"]
    posted = client.post(f"/api/conversations/{conversation}/messages", json={"content": "what is here?"})
    assert posted.status_code == 201, posted.text
    reply = posted.json()["reply"]["id"]
    deadline = time.monotonic() + 30
    while True:
        messages = client.get(f"/api/conversations/{conversation}/messages").json()["items"]
        status = next(m["status"] for m in messages if m["id"] == reply)
        if status in ("completed", "failed"):
            break
        assert time.monotonic() < deadline, strict_system.logs()
        time.sleep(0.1)
    assert status == "completed"
