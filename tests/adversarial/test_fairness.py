"""Fair claims through the real api and workers: one tenant's big upload does not hold back another's.

Tenant A uploads 60 files in one request, then tenant B uploads one. The parse worker
(WORKER_CONCURRENCY 2, each parse slowed by an S3 that answers late, through a proxy, so
that A's queue is still long when B's file arrives) must start B's parse after at most a few of A's jobs
that were still waiting, where first-in-first-out claims would start every one of them
first. The order is read from the parse jobs' started_at, as an operator would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from rag_testing.faults import TcpProxy
from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import System

FILES_OF_A = 60
# A parse reads the original and writes the text: 2 x 0.1 s, so 60 jobs / 2 slots last ~6 s.
S3_LATENCY = 0.1
MAX_JOBS_OF_A_BEFORE_B = 3  # the two already running when B arrived, plus one claim in progress


@pytest.fixture
def slow_parses(system_factory: SystemFactory, s3_env: dict[str, str]) -> Iterator[System]:
    s3 = TcpProxy.to_url(s3_env["S3_ENDPOINT_URL"])
    try:
        system = system_factory(workers=False)
        system.add_worker("parse", S3_ENDPOINT_URL=s3.url, WORKER_CONCURRENCY="2")
        system.add_worker("ingest")
        s3.latency = S3_LATENCY  # once the parse worker is ready (its start checks the bucket)
        yield system
    finally:
        s3.stop()


def new_workspace(client: httpx.Client) -> str:
    response = client.post("/api/workspaces", json={"name": "tenant"})
    assert response.status_code == 201, response.text
    workspace: str = response.json()["id"]
    return workspace


def upload(client: httpx.Client, workspace: str, files: list[tuple[str, bytes]]) -> list[str]:
    response = client.post(
        f"/api/workspaces/{workspace}/documents/upload",
        files=[("files", (name, data, "text/plain")) for name, data in files],
    )
    assert response.status_code == 201, response.text
    return [d["id"] for d in response.json()["documents"]]


def test_one_tenants_single_file_is_parsed_before_all_but_a_few_of_anothers_60(slow_parses: System) -> None:
    a = slow_parses.client(uuid.uuid4())
    b = slow_parses.client(uuid.uuid4())
    workspace_a, workspace_b = new_workspace(a), new_workspace(b)

    upload(a, workspace_a, [(f"a{i}.txt", f"tenant A, file {i}\n".encode()) for i in range(FILES_OF_A)])
    (doc_b,) = upload(b, workspace_b, [("b.txt", b"tenant B's only file\n")])

    deadline = time.monotonic() + 60
    while not slow_parses.sql(
        "SELECT 1 FROM parse_jobs WHERE document_id = %s AND started_at IS NOT NULL", (doc_b,)
    ):
        assert time.monotonic() < deadline, "B's parse never started\n" + slow_parses.logs()
        time.sleep(0.05)

    ((b_created, b_started),) = slow_parses.sql(
        "SELECT created_at, started_at FROM parse_jobs WHERE document_id = %s", (doc_b,)
    )
    ((waiting_when_b_came, started_before_b),) = slow_parses.sql(
        "SELECT count(*) FILTER (WHERE started_at IS NULL OR started_at > %(created)s),"
        " count(*) FILTER (WHERE started_at > %(created)s AND started_at < %(started)s)"
        " FROM parse_jobs WHERE workspace_id = %(ws)s",
        {"created": b_created, "started": b_started, "ws": workspace_a},
    )
    # The scenario is only meaningful if A still had a long queue when B's file arrived.
    assert waiting_when_b_came >= 20, f"A's queue was only {waiting_when_b_came} long: raise S3_LATENCY"
    assert started_before_b <= MAX_JOBS_OF_A_BEFORE_B, (
        f"{started_before_b} of A's {waiting_when_b_came} waiting jobs started before B's"
    )
    # And B's document went through the whole pipeline, with A's still being parsed.
    deadline = time.monotonic() + 60
    while b.get(f"/api/documents/{doc_b}").json()["status"] != "ingested":
        assert time.monotonic() < deadline, "B's document was not ingested\n" + slow_parses.logs()
        time.sleep(0.05)
