"""Upload → parse → ingest → search, as a member sees it: real processes end to end.

Every format (txt, md, html, pdf, docx, pptx, xlsx, csv, eml, and by OCR a scanned pdf, png, jpg
and a two-page tiff) goes through the real api, parse worker and ingest worker; every member's
WebSocket receives exactly the contract's event sequence for each document, a
non-member receives nothing, and a sentence of each document finds it first.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rag_testing import scans
from rag_testing.system import System, start_system
from rag_testing.wsclient import EventCollector

FIXTURES = Path(__file__).parents[2] / "services" / "parse-worker" / "tests" / "fixtures"

# filename → (content, a sentence of it that no other document contains)
DOCUMENTS: dict[str, tuple[bytes, str]] = {
    "keeper.txt": (
        b"The lighthouse keeper logged seventeen passing ships before dawn.\n\nThe fog lifted at noon.\n",
        "lighthouse keeper logged seventeen passing ships",
    ),
    "glaciers.md": (
        b"# Field notes\n\nGlaciers carve U-shaped valleys as they retreat.\n\n- moraines\n- erratics\n",
        "glaciers carve valleys as they retreat",
    ),
    "page.html": ((FIXTURES / "page.html").read_bytes(), "fresh bread every morning"),
    "multipage.pdf": (
        (FIXTURES / "multipage.pdf").read_bytes(),
        "the quick brown fox jumps over the lazy dog",
    ),
    "report.docx": ((FIXTURES / "report.docx").read_bytes(), "revenue grew strongly this quarter"),
    # The speaker notes of slide 1 are indexed with the slide.
    "review.pptx": ((FIXTURES / "review.pptx").read_bytes(), "mention the new office in Lyon"),
    "sales.xlsx": ((FIXTURES / "sales.xlsx").read_bytes(), "copper kettles shipped by freighter"),
    "inventory.csv": ((FIXTURES / "inventory.csv").read_bytes(), "oak barrels aged in the Bordeaux cellar"),
    "memo.eml": ((FIXTURES / "memo.eml").read_bytes(), "the orchard harvest of quinces doubled"),
    # Read by OCR: pages rendered from known text, as a scanner or a phone gives them.
    "scan.pdf": (
        scans.scanned_pdf([scans.page_image(["The harbour master counted eleven trawlers at the pier."])]),
        "harbour master counted eleven trawlers",
    ),
    "whiteboard.png": (
        scans.encode(scans.page_image(["Sprint goal: migrate the billing service to the new queue."]), "PNG"),
        "migrate the billing service to the new queue",
    ),
    "receipt.jpg": (
        scans.encode(
            scans.page_image(["Receipt for three ceramic teapots paid in cash."]).convert("RGB"), "JPEG"
        ),
        "receipt for three ceramic teapots",
    ),
    "fax.tiff": (
        scans.multipage_tiff(
            [
                scans.page_image(["Fax cover sheet for the surveyors in Tromso."]),
                scans.page_image(["The survey found permafrost under the northern slope."]),
            ]
        ),
        "permafrost under the northern slope",
    ),
}

LIFE_OF_AN_UPLOAD = [
    ("document.created", None, "queued"),
    ("job.status_updated", "parse", "queued"),
    ("job.status_updated", "parse", "running"),
    ("document.status_updated", None, "parsing"),
    ("job.status_updated", "parse", "success"),
    ("document.status_updated", None, "parsed"),
    ("job.status_updated", "ingest", "queued"),
    ("job.status_updated", "ingest", "running"),
    ("document.status_updated", None, "ingesting"),
    ("job.status_updated", "ingest", "success"),
    ("document.status_updated", None, "ingested"),
]


def sequence_of(events: list[dict[str, Any]], document_id: str) -> list[tuple[str, str | None, str]]:
    return [
        (e["type"], e["payload"].get("job_type"), e["payload"]["status"])
        for e in events
        if e["payload"].get("document_id") == document_id and "progress" not in e["payload"]
    ]


@pytest.mark.anyio
async def test_every_format_reaches_ingested_with_the_contract_sequence_and_are_searchable(
    system: System,
) -> None:
    owner, member, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    api = system.client(owner)
    workspace = api.post("/api/workspaces", json={"name": "e2e"}).json()["id"]
    assert api.post(f"/api/workspaces/{workspace}/members", json={"user_id": str(member)}).status_code == 201

    async with (
        EventCollector(system.api.ws_url, system.token(owner)) as owner_ws,
        EventCollector(system.api.ws_url, system.token(member)) as member_ws,
        EventCollector(system.api.ws_url, system.token(stranger)) as stranger_ws,
    ):
        files = [
            ("files", (name, content, "application/octet-stream")) for name, (content, _) in DOCUMENTS.items()
        ]
        response = api.post(f"/api/workspaces/{workspace}/documents/upload", files=files)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["errors"] == []
        ids = {d["filename"]: d["id"] for d in body["documents"]}
        assert set(ids) == set(DOCUMENTS)

        def all_ingested(ws: EventCollector) -> bool:
            done = {
                e["payload"]["document_id"]
                for e in ws.events
                if e["type"] == "document.status_updated" and e["payload"]["status"] in ("ingested", "error")
            }
            return done >= set(ids.values())

        await owner_ws.wait_until(lambda: all_ingested(owner_ws), timeout=120)
        await member_ws.wait_until(lambda: all_ingested(member_ws), timeout=30)

        for name, document_id in ids.items():
            assert sequence_of(owner_ws.events, document_id) == LIFE_OF_AN_UPLOAD, name
        # The user's ids are consecutive, in commit order (1 and 2 are the workspace's two
        # workspace.member_added, before the socket opened); the member sees the same events.
        assert [e["id"] for e in owner_ws.events] == list(range(3, len(owner_ws.events) + 3))
        assert [(e["type"], e["payload"]) for e in member_ws.events] == [
            (e["type"], e["payload"]) for e in owner_ws.events
        ]
        assert stranger_ws.events == []

    stranger_api = system.client(stranger)
    for document_id in ids.values():
        assert stranger_api.get(f"/api/documents/{document_id}").status_code == 404
        assert api.get(f"/api/documents/{document_id}").json()["status"] == "ingested"

    for name, (_, sentence) in DOCUMENTS.items():
        hits = api.get(f"/api/workspaces/{workspace}/search", params={"q": sentence, "k": 5}).json()["items"]
        assert hits, f"no hit for {sentence!r}"
        assert hits[0]["filename"] == name, (sentence, [h["filename"] for h in hits])
    assert stranger_api.get(f"/api/workspaces/{workspace}/search", params={"q": "bread"}).status_code == 404


def test_an_upload_wakes_the_parse_worker_sleeping_on_a_30s_poll_within_100ms(
    database_url: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """The seed's whole point: the api's NOTIFY parse_jobs starts the job at once."""
    system = start_system(database_url, s3_env, tmp_path, WORKER_IDLE_SLEEP_SECONDS="30")
    try:
        api = system.client(uuid.uuid4())
        workspace = api.post("/api/workspaces", json={"name": "wake"}).json()["id"]
        time.sleep(0.5)  # let the worker settle into its 30 s wait
        for n in range(10):
            response = api.post(
                f"/api/workspaces/{workspace}/documents/upload",
                files=[("files", (f"note{n}.txt", f"Wake-up note number {n}.".encode(), "text/plain"))],
            )
            assert response.status_code == 201, response.text
            job_id = response.json()["documents"][0]["parse_job_id"]
            deadline = time.monotonic() + 5
            while not started(database_url, job_id):
                assert time.monotonic() < deadline, f"job {n} did not start within 5 s:\n{system.logs()}"
                time.sleep(0.01)
        with psycopg.connect(database_url) as conn:
            delays = [
                row[0]
                for row in conn.execute(
                    "SELECT EXTRACT(EPOCH FROM (j.started_at - d.created_at))::float8"
                    " FROM parse_jobs j JOIN documents d ON d.id = j.document_id"
                )
            ]
    finally:
        system.stop()
    # created_at is the start of the upload's transaction: the delay includes its commit.
    assert len(delays) == 10 and max(delays) < 0.1, delays


def started(dsn: str, job_id: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT started_at IS NOT NULL FROM parse_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    return bool(row and row[0])
