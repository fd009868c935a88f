"""The official Python client end to end, as an integrator uses it: real api, parse worker
and ingest worker. A workspace is created, a text file uploaded, its events followed through
`Realtime` until the document is `ingested`, and search finds it. The runnable example
(docs/examples/python_client.py) does the same as a script, run here as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rag_engine_client import Event, RagClient
from rag_testing.system import System

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "python_client.py"
TEXT = b"The lighthouse keeper logged seventeen passing ships before dawn.\n\nThe fog lifted at noon.\n"
DOCUMENT_STATUSES = ["parsing", "parsed", "ingesting", "ingested"]


@pytest.mark.anyio
async def test_upload_follow_events_until_ingested_then_search(system: System) -> None:
    user = uuid.uuid4()
    ready = asyncio.Event()
    async with RagClient(system.api.url, system.token(user)) as client:
        realtime = client.realtime(on_ready=lambda hello: ready.set())
        async with realtime:
            await asyncio.wait_for(ready.wait(), 60)
            workspace = await client.create_workspace("integrator")
            uploaded = await client.upload(workspace["id"], [("keeper.txt", TEXT, "text/plain")])
            document = uploaded["documents"][0]

            seen: list[Event] = []

            async def until_ingested() -> None:
                async for event in realtime:
                    seen.append(event)
                    payload = event["payload"]
                    if (
                        event["type"] == "document.status_updated"
                        and payload["document_id"] == document["id"]
                    ):
                        assert payload["status"] != "error", payload
                        if payload["status"] == "ingested":
                            return

            await asyncio.wait_for(until_ingested(), 240)

        ids = [e["id"] for e in seen]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # once each, in order, no gap
        statuses = [
            e["payload"]["status"]
            for e in seen
            if e["type"] == "document.status_updated" and e["payload"]["document_id"] == document["id"]
        ]
        assert statuses == DOCUMENT_STATUSES
        assert seen[0]["type"] == "workspace.member_added"
        assert ("document.created", document["id"]) in [
            (e["type"], e["payload"].get("document_id")) for e in seen
        ]

        assert (await client.get_document(document["id"]))["status"] == "ingested"
        hits = await client.search(workspace["id"], "lighthouse keeper passing ships")
        assert hits and hits[0]["document_id"] == document["id"]
        assert "lighthouse keeper" in hits[0]["text"]


def test_the_example_script_runs_against_the_system(system: System, tmp_path: Path) -> None:
    note = tmp_path / "glaciers.txt"
    note.write_text("Glaciers carve U-shaped valleys as they retreat, leaving moraines behind.\n")
    token = system.token(uuid.uuid4())
    command = [sys.executable, str(EXAMPLE), system.api.url, token, str(note), "glaciers carve valleys"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["statuses"] == ["queued", *DOCUMENT_STATUSES]
    assert summary["transport"] == "websocket"
    assert summary["hits"][0]["document_id"] == summary["document_id"]

    missing = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 2 and "RAG_API_URL" in missing.stderr

    refused = subprocess.run(
        [sys.executable, str(EXAMPLE), system.api.url, "not-a-jwt"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = json.loads(refused.stdout)
    assert (said["error"], said["status"]) == ("unauthorized", 401) and said["message"]
