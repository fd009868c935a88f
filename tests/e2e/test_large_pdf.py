"""A 300-page PDF through the real workers: bounded memory and regular progress."""

from __future__ import annotations

import importlib.util
import itertools
import time
import uuid
from pathlib import Path
from types import ModuleType

import psutil

from rag_testing.system import System

BUILDERS = Path(__file__).parents[2] / "services" / "parse-worker" / "tests" / "builders.py"
PAGES = 300
MEMORY_BOUND_MB = 300  # per worker process tree, peak RSS


def builders() -> ModuleType:
    spec = importlib.util.spec_from_file_location("parse_fixture_builders", BUILDERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peak_rss_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a process plus the current RSS of its children."""
    proc = psutil.Process(pid)
    hwm = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    children = sum(c.memory_info().rss for c in proc.children(recursive=True)) / 1024
    return (hwm + children) / 1024


def test_a_300_page_pdf_ingests_with_bounded_memory_and_progress_every_tenth(system: System) -> None:
    sentence = "Page {n} of the annual survey records {n} sightings of the rare heron near the delta."
    pages = [
        [sentence.format(n=n), f"Section {n}: water levels, nesting sites and weather."] * 4
        for n in range(PAGES)
    ]
    pdf = builders().make_pdf(pages)
    owner = uuid.uuid4()
    api = system.client(owner)
    workspace = api.post("/api/workspaces", json={"name": "big"}).json()["id"]
    response = api.post(
        f"/api/workspaces/{workspace}/documents/upload",
        files=[("files", ("survey.pdf", pdf, "application/pdf"))],
    )
    assert response.status_code == 201, response.text
    document_id = response.json()["documents"][0]["id"]
    deadline = time.monotonic() + 240
    while (status := api.get(f"/api/documents/{document_id}").json()["status"]) not in ("ingested", "error"):
        assert time.monotonic() < deadline, system.logs()
        time.sleep(0.2)
    assert status == "ingested", api.get(f"/api/documents/{document_id}").json()

    events = api.get("/api/events", params={"after": 0, "limit": 1000}).json()["items"]
    progress = [e["payload"]["progress"] for e in events if "progress" in e["payload"]]
    assert progress, "no progress event"
    total = progress[0]["total"]
    done = [0, *(p["done"] for p in progress), total]
    assert all(b > a for a, b in itertools.pairwise(done))
    assert max(b - a for a, b in itertools.pairwise(done)) <= -(-total // 10), done

    hits = api.get(
        f"/api/workspaces/{workspace}/search", params={"q": "Page 287 of the annual survey"}
    ).json()
    assert hits["items"] and hits["items"][0]["document_id"] == document_id

    parse_worker = next(s for s in system.services if s.name.startswith("parse"))
    ingest_worker = next(s for s in system.services if s.name.startswith("ingest"))
    memory = {s.name: round(peak_rss_mb(s.process.pid), 1) for s in (parse_worker, ingest_worker)}
    print(f"300-page PDF: {total} chunks; peak RSS MB {memory}")
    assert all(mb < MEMORY_BOUND_MB for mb in memory.values()), memory
