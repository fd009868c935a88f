"""rag-engine from Python, the way an integrator uses it: create a workspace, upload a text
file, follow its events until the document is ingested, then search it.

    pip install ./clients/python
    python docs/examples/python_client.py http://127.0.0.1:8000 "$TOKEN" [file.txt] [query]

The API URL and token may also come from RAG_API_URL and RAG_TOKEN. Prints one JSON line
(workspace, document, the statuses it went through, the search hits) and exits 0 when the
document was found by search; 1 when processing failed or timed out.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from rag_engine_client import ApiError, RagClient, RealtimeUnauthorized

SAMPLE = (
    "Salmon hatch in fresh water, migrate to the ocean and return upstream to the river\n"
    "where they were born to spawn. The journey can cover thousands of kilometres.\n"
)
TIMEOUT_SECONDS = 240.0


async def run(api_url: str, token: str, upload: tuple[str, bytes, str], query: str) -> int:
    async with RagClient(api_url, token) as client:
        workspace = await client.create_workspace("python client example")  # a bad token: ApiError 401
        ready = asyncio.Event()
        # Start listening before uploading: a fresh stream delivers every event after its
        # hello, so nothing about the upload can be missed. (on_ready is where an app would
        # load its state over REST.)
        realtime = client.realtime(on_ready=lambda hello: ready.set())
        async with realtime:
            await asyncio.wait_for(ready.wait(), 60)
            result = await client.upload(workspace["id"], [upload])
            if not result["documents"]:
                print(json.dumps({"error": result["errors"]}))
                return 1
            document = result["documents"][0]
            statuses = [document["status"]]

            async def follow() -> str:
                async for event in realtime:
                    payload = event["payload"]
                    if (
                        event["type"] == "document.status_updated"
                        and payload["document_id"] == document["id"]
                    ):
                        statuses.append(payload["status"])
                        if payload["status"] in ("ingested", "error"):
                            return str(payload["status"])
                return "stream ended"

            try:
                final = await asyncio.wait_for(follow(), TIMEOUT_SECONDS)
            except TimeoutError:
                final = "timeout"
        if final != "ingested":
            doc = await client.get_document(document["id"])
            print(json.dumps({"error": final, "statuses": statuses, "document": doc}))
            return 1
        hits = await client.search(workspace["id"], query, k=5)
        print(
            json.dumps(
                {
                    "workspace_id": workspace["id"],
                    "document_id": document["id"],
                    "statuses": statuses,
                    "transport": realtime.transport,
                    "last_event_id": realtime.last_event_id,
                    "hits": [
                        {"document_id": h["document_id"], "score": h["score"], "text": h["text"]}
                        for h in hits
                    ],
                }
            )
        )
        return 0 if any(h["document_id"] == document["id"] for h in hits) else 1


def main(argv: list[str]) -> int:
    api_url = argv[1] if len(argv) > 1 else os.environ.get("RAG_API_URL", "")
    token = argv[2] if len(argv) > 2 else os.environ.get("RAG_TOKEN", "")
    if not api_url or not token:
        print(__doc__, file=sys.stderr)
        return 2
    if len(argv) > 3:
        path = Path(argv[3])
        upload = (path.name, path.read_bytes(), "text/plain")
    else:
        upload = ("salmon.txt", SAMPLE.encode(), "text/plain")
    query = argv[4] if len(argv) > 4 else "where do salmon spawn"
    try:
        return asyncio.run(run(api_url, token, upload, query))
    except ApiError as exc:
        print(json.dumps({"error": exc.code, "status": exc.status, "message": exc.message}))
        return 1
    except RealtimeUnauthorized as exc:
        print(json.dumps({"error": "unauthorized", "message": str(exc)}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
