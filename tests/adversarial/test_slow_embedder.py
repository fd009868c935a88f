"""A hanging or failing embedding service: searches fail in time, every other route keeps working.

A real api process with EMBEDDING_PROVIDER=openai against rag_devstack's fake embeddings
server, EMBEDDING_TIMEOUT_SECONDS=2. While 30 searches wait on a service that hangs,
no pool connection is held by them: listing workspaces and uploading answer at once
(before, each waiting search held a connection and the rest of the api answered 503).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rag_testing.fake_embeddings import FakeEmbeddings, Scripted
from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import System

TIMEOUT_SECONDS = 2.0
SEARCHES = 30


@pytest.fixture
def fake() -> Iterator[FakeEmbeddings]:
    server = FakeEmbeddings()
    yield server
    server.close()


@pytest.fixture
def slow_system(system_factory: SystemFactory, fake: FakeEmbeddings) -> System:
    system = system_factory(
        workers=False,
        EMBEDDING_PROVIDER="openai",
        EMBEDDING_BASE_URL=fake.base_url,
        EMBEDDING_MODEL="fake-embedding-model",
        EMBEDDING_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
    )
    return system


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_hanging_embedder_fails_searches_in_time_and_leaves_other_routes_working(
    slow_system: System, fake: FakeEmbeddings
) -> None:
    user = uuid.uuid4()
    client = slow_system.client(user)
    workspace = client.post("/api/workspaces", json={"name": "w"}).json()["id"]
    search = f"/api/workspaces/{workspace}/search"
    assert client.get(search, params={"q": "harbour ledger"}).status_code == 200  # the service works

    fake.script = [Scripted(delay=30) for _ in range(10 * SEARCHES)]  # from now on it hangs

    def one_search(i: int) -> tuple[httpx.Response, float]:
        with httpx.Client(
            base_url=slow_system.api.url,
            headers={"Authorization": f"Bearer {slow_system.token(user)}"},
            timeout=60,
        ) as c:
            return timed(lambda: c.get(search, params={"q": f"question {i}"}))

    with ThreadPoolExecutor(SEARCHES) as pool:
        searches = [pool.submit(one_search, i) for i in range(SEARCHES)]
        deadline = time.monotonic() + 10
        while len(fake.requests) < 1 + SEARCHES:  # every search is waiting on the embedder
            assert time.monotonic() < deadline, f"only {len(fake.requests) - 1} searches reached the embedder"
            time.sleep(0.02)

        # Meanwhile the rest of the api answers, quickly (the pool checkout timeout is 5 s).
        listed, listed_after = timed(lambda: client.get("/api/workspaces"))
        uploaded, uploaded_after = timed(
            lambda: client.post(
                f"/api/workspaces/{workspace}/documents/upload",
                files=[("files", ("note.txt", b"a note while the embedder hangs\n", "text/plain"))],
            )
        )
        documents, documents_after = timed(lambda: client.get(f"/api/workspaces/{workspace}/documents"))
        still_waiting = sum(not s.done() for s in searches)
        results = [s.result(timeout=60) for s in searches]

    assert (listed.status_code, uploaded.status_code, documents.status_code) == (200, 201, 200), uploaded.text
    assert max(listed_after, uploaded_after, documents_after) < 3, (
        listed_after,
        uploaded_after,
        documents_after,
    )
    assert still_waiting > 0  # the other routes were served while searches were still hanging
    for response, elapsed in results:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "embedding_unavailable"
        assert TIMEOUT_SECONDS - 0.5 <= elapsed < TIMEOUT_SECONDS + 10, elapsed
    # The user-facing message names no host, URL or upstream detail.
    assert fake.base_url not in results[0][0].text and "127.0.0.1" not in results[0][0].text


def test_an_embedder_error_and_a_dead_service_are_503_embedding_unavailable(
    slow_system: System, fake: FakeEmbeddings
) -> None:
    client = slow_system.client(uuid.uuid4())
    workspace = client.post("/api/workspaces", json={"name": "w"}).json()["id"]
    search = f"/api/workspaces/{workspace}/search"

    fake.script = [Scripted(status=400)]  # the provider's own (permanent) error
    refused, elapsed = timed(lambda: client.get(search, params={"q": "anything"}))
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "embedding_unavailable")
    assert elapsed < TIMEOUT_SECONDS

    fake.close()  # nothing listens any more: connection refused, retried until the deadline
    dead, elapsed = timed(lambda: client.get(search, params={"q": "anything"}))
    assert (dead.status_code, dead.json()["error"]["code"]) == (503, "embedding_unavailable")
    assert elapsed < TIMEOUT_SECONDS + 5
    assert client.get("/api/workspaces").status_code == 200
    assert client.get(f"/api/workspaces/{workspace}/documents").status_code == 200
