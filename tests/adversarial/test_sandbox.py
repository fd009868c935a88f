"""The extraction sandbox as deployed: the real parse worker's children hold none of its secrets.

The whole system runs as processes with credentials in their environment (database URL
with password, S3 keys, JWT secret, cloud and model keys). An attacker whose file takes
over PDFium lands in an extraction child: what does it find? Read from the kernel
(/proc/<child>/environ, /proc/<child>/limits), not from what the code meant to do.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import System

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parents[2] / "services" / "parse-worker" / "tests" / "fixtures"
EXTRA_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY00042",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-0b1c2d3e4f",
    "AWS_SESSION_TOKEN": "aws-session-token-5a6b7c",
    "LLM_API_KEY": "sk-llm-sandbox-key-0001",
    "EMBEDDING_API_KEY": "sk-embed-sandbox-key-0002",
}


@pytest.fixture
def system(system_factory: SystemFactory) -> System:
    started = system_factory(PARSE_TIMEOUT_SECONDS="30", **EXTRA_SECRETS)
    return started


def extraction_children(worker_pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"rag_parse_worker.child" in argv and str(worker_pid).encode() in argv:
            found.append(int(entry))
    return found


def environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")


def limits(pid: int) -> dict[str, list[str]]:
    rows = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {row[:26].strip(): row[26:].split()[:2] for row in rows}


def test_the_parse_workers_children_hold_no_secret_and_run_confined(system: System) -> None:
    worker = next(s for s in system.services if s.name == "parse0")
    secrets = {
        name: value
        for name, value in system.env.items()
        if any(word in name for word in ("URL", "KEY", "SECRET", "TOKEN", "PASSWORD"))
    }
    assert {"DATABASE_URL", "JWT_SECRET", "S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"} <= set(secrets)
    # The worker itself has them (else this test would prove nothing). Under an
    # unprivileged user its environ is unreadable even to us (it made itself non-dumpable).
    try:
        worker_env = environ(worker.process.pid)
    except PermissionError:
        assert os.geteuid() != 0
    else:
        assert all(value in worker_env for value in secrets.values())

    children = extraction_children(worker.process.pid)
    assert len(children) >= 1
    for pid in children:
        env = environ(pid)
        leaked = [name for name, value in secrets.items() if value in env or f"{name}=" in env]
        assert leaked == [], (pid, leaked)
        assert "DATABASE" not in env and "S3_" not in env and "JWT" not in env
        caps = limits(pid)
        assert caps["Max address space"] == [str(2048 * 1024 * 1024)] * 2  # PARSE_MEMORY_LIMIT_MB default
        assert 30 < int(caps["Max cpu time"][0]) <= 33  # PARSE_TIMEOUT_SECONDS=30, plus a second or so
        assert caps["Max core file size"] == ["0", "0"] and caps["Max file size"] == ["0", "0"]
        assert caps["Max processes"] == ["0", "0"]
        assert os.getsid(pid) == pid  # its own session, away from the worker's signals

    # Confined, it still does its job: a PDF and a Word file go all the way to `ingested`.
    owner = uuid.uuid4()
    api = system.client(owner)
    workspace = api.post("/api/workspaces", json={"name": "sandbox"}).json()["id"]
    files = [
        ("files", (name, (FIXTURES / name).read_bytes(), "application/octet-stream"))
        for name in ("multipage.pdf", "report.docx")
    ]
    upload = api.post(f"/api/workspaces/{workspace}/documents/upload", files=files)
    assert upload.status_code == 201, upload.text
    deadline = time.monotonic() + 90
    for document in upload.json()["documents"]:
        while (status := api.get(f"/api/documents/{document['id']}").json()["status"]) != "ingested":
            assert status != "error" and time.monotonic() < deadline, system.logs()
            time.sleep(0.1)
    hits = api.get(f"/api/workspaces/{workspace}/search", params={"q": "page"}).json()["items"]
    assert hits
