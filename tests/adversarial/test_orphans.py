"""Storage hygiene with real processes: the object a delete during parse leaves is swept.

A document is deleted while its parse runs (the parse worker's S3, behind a proxy, answers
its download late, which holds the parse). The api deletes the rows and the original; the parse worker then
writes `parsed.txt` and its commit is fenced out: that object belongs to nothing. The
first api runs the sweeper with the production margin (an hour): the young orphan stays.
A second api replica started with ORPHAN_MIN_AGE_SECONDS=0 and a short interval sweeps it,
and leaves every object of a live document in place. Users check it by listing the bucket.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from rag_testing.faults import TcpProxy
from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import System

S3_LATENCY = 3.0  # the download's answer is this late: the window in which the document is deleted


@pytest.fixture
def slow_parses(system_factory: SystemFactory, s3_env: dict[str, str]) -> Iterator[System]:
    # A long lease: no heartbeat lands within the delay, so the worker learns of the delete
    # only at its commit, after it wrote parsed.txt (the case this test is about).
    s3 = TcpProxy.to_url(s3_env["S3_ENDPOINT_URL"])
    try:
        system = system_factory(workers=False, JOB_LEASE_SECONDS="300")
        system.add_worker("parse", S3_ENDPOINT_URL=s3.url)
        system.add_worker("ingest")
        s3.latency = S3_LATENCY  # once the parse worker is ready (its start checks the bucket)
        yield system
    finally:
        s3.stop()


def bucket_keys(system: System) -> set[str]:
    return set(system.bucket_contents("workspaces/")[0])


def wait_for(condition: Callable[[], bool], what: str, system: System, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s\n" + system.logs()
        time.sleep(0.1)


def upload_one(client: httpx.Client, workspace: str, name: str, text: bytes) -> str:
    response = client.post(
        f"/api/workspaces/{workspace}/documents/upload", files=[("files", (name, text, "text/plain"))]
    )
    assert response.status_code == 201, response.text
    document: str = response.json()["documents"][0]["id"]
    return document


def test_the_parsed_text_left_by_a_delete_during_parse_is_swept_and_live_objects_stay(
    slow_parses: System,
) -> None:
    client = slow_parses.client(uuid.uuid4())
    response = client.post("/api/workspaces", json={"name": "hygiene"})
    assert response.status_code == 201, response.text
    workspace = response.json()["id"]
    prefix = f"workspaces/{workspace}/documents/"

    live = upload_one(client, workspace, "keep.txt", b"a document that stays\n")
    wait_for(
        lambda: client.get(f"/api/documents/{live}").json()["status"] == "ingested",
        "live ingested",
        slow_parses,
    )
    live_keys = {f"{prefix}{live}/original", f"{prefix}{live}/parsed.txt"}
    assert bucket_keys(slow_parses) == live_keys

    doomed = upload_one(client, workspace, "doomed.txt", b"deleted while it is parsed\n")
    wait_for(
        lambda: client.get(f"/api/documents/{doomed}").json()["status"] == "parsing", "parsing", slow_parses
    )
    assert client.delete(f"/api/documents/{doomed}").status_code == 204
    orphan = f"{prefix}{doomed}/parsed.txt"
    wait_for(lambda: orphan in bucket_keys(slow_parses), "the parse worker wrote parsed.txt", slow_parses)
    assert client.get(f"/api/documents/{doomed}").status_code == 404
    assert bucket_keys(slow_parses) == live_keys | {orphan}

    # The running api sweeps with the production margin: a young orphan is not touched,
    # since it could be an object whose row is about to commit.
    slow_parses.add_api(ORPHAN_SWEEP_INTERVAL_SECONDS="0.5")
    time.sleep(2)
    assert orphan in bucket_keys(slow_parses)

    slow_parses.add_api(ORPHAN_SWEEP_INTERVAL_SECONDS="0.5", ORPHAN_MIN_AGE_SECONDS="0")
    wait_for(lambda: orphan not in bucket_keys(slow_parses), "the sweeper removed the orphan", slow_parses)
    assert bucket_keys(slow_parses) == live_keys
    assert client.get(f"/api/documents/{live}").json()["status"] == "ingested"
    swept = [s for s in slow_parses.apis if '"orphans_deleted"' in s.process.log_text()]
    assert [s.name for s in swept] == ["api2"], "the replica with age 0 swept, and only it"
