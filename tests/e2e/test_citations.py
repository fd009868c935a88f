"""Where a hit or a citation is, through the real workers: the page of a PDF passage, page 1
of a one-page PDF, no page for a text file, and the passage's range in the parsed text."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rag_testing.system import System
from tests.e2e.test_large_pdf import builders

# Three pages of about 1,800 characters: each page is several chunks, and the last sentence of
# a page is in a chunk that starts on that page (a chunk repeats at most the tail of the previous
# one, far less than a page).
FILLER = "Line {n} of page {page} lists gauges, tallies and the tide tables of the week."
LAST = {
    1: "The survey opened in March with volunteers counting birds along the river.",
    2: "Storms flooded the lower meadows and delayed the second week.",
    3: "The rare heron nested on the third island and seven chicks fledged in July.",
}
REPORT = [[FILLER.format(n=n, page=page) for n in range(24)] + [LAST[page]] for page in (1, 2, 3)]
LEAFLET = [["Lighthouse tours start at noon every Sunday."]]
NOTES = b"The lighthouse keeper logs every ship.\n\nThe heron left the island in August.\n"


def wait_ingested(system: System, api: Any, ids: list[str]) -> None:
    deadline = time.monotonic() + 120
    for document_id in ids:
        while (status := api.get(f"/api/documents/{document_id}").json()["status"]) != "ingested":
            assert status != "error" and time.monotonic() < deadline, system.logs()
            time.sleep(0.1)


def test_hits_and_citations_carry_their_page_and_range(system: System) -> None:
    make_pdf = builders().make_pdf
    api = system.client(uuid.uuid4())
    workspace = api.post("/api/workspaces", json={"name": "pages"}).json()["id"]
    uploaded = api.post(
        f"/api/workspaces/{workspace}/documents/upload",
        files=[
            ("files", ("report.pdf", make_pdf(REPORT), "application/pdf")),
            ("files", ("leaflet.pdf", make_pdf(LEAFLET), "application/pdf")),
            ("files", ("notes.txt", NOTES, "text/plain")),
        ],
    )
    assert uploaded.status_code == 201, uploaded.text
    wait_ingested(system, api, [d["id"] for d in uploaded.json()["documents"]])

    def first_hit(q: str, **filters: Any) -> dict[str, Any]:
        items = api.get(f"/api/workspaces/{workspace}/search", params={"q": q, **filters}).json()["items"]
        assert items, q
        hit: dict[str, Any] = items[0]
        assert 0 <= hit["char_start"] < hit["char_end"]
        assert hit["char_end"] - hit["char_start"] == len(hit["text"])  # text == parsed[start:end]
        return hit

    heron = first_hit("rare heron nested on the third island", content_type="application/pdf")
    assert (heron["filename"], heron["page"]) == ("report.pdf", 3), heron
    storms = first_hit("storms flooded the lower meadows", content_type="application/pdf")
    assert (storms["filename"], storms["page"]) == ("report.pdf", 2), storms
    first = first_hit("line 0 of page 1 gauges", document_id=heron["document_id"])
    assert (first["page"], first["char_start"]) == (1, 0), first  # the first passage starts the text
    tours = first_hit("lighthouse tours noon Sunday", content_type="application/pdf")
    assert (tours["filename"], tours["page"]) == ("leaflet.pdf", 1), tours  # one page, no page break
    keeper = first_hit("lighthouse keeper logs ships", content_type="text/plain")
    assert (keeper["filename"], keeper["page"]) == ("notes.txt", None), keeper
    assert NOTES.decode()[keeper["char_start"] : keeper["char_end"]] == keeper["text"]

    # A citation carries the same location as the hit it cites.
    conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()["id"]
    asked = api.post(
        f"/api/conversations/{conversation}/messages",
        json={
            "content": "Where did the rare heron nest?",
            "filters": {"document_id": [heron["document_id"]]},
        },
    )
    assert asked.status_code == 201, asked.text
    reply_id = asked.json()["reply"]["id"]
    deadline = time.monotonic() + 60
    while (reply := _message(api, conversation, reply_id))["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, system.logs()
        time.sleep(0.05)
    assert reply["status"] == "completed" and "third island" in reply["content"], reply
    [citation] = reply["citations"]
    assert {k: citation[k] for k in ("chunk_id", "page", "char_start", "char_end")} == {
        k: heron[k] for k in ("chunk_id", "page", "char_start", "char_end")
    }


def _message(api: Any, conversation: str, message_id: str) -> dict[str, Any]:
    items = api.get(f"/api/conversations/{conversation}/messages").json()["items"]
    return next(m for m in items if m["id"] == message_id)
