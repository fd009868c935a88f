"""End to end with the real api: upload over HTTP, watch the parse happen over the WebSocket.

The seed's whole point: the api's NOTIFY wakes the parse worker (another process) at
once, and the worker's events reach the user's WebSocket through Postgres.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
import pytest
from websockets.asyncio.client import connect

from rag_devstack.postgres import free_port
from rag_devstack.procs import ServiceProcess, venv_command

from .conftest import FIXTURES, Stack

pytestmark = pytest.mark.anyio

JWT_SECRET = "parse-worker-e2e-secret-" + "0123456789abcdef" * 2


async def next_event(ws: Any, timeout: float = 20) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") not in ("ping", "hello"):
            return frame


async def test_upload_through_the_api_is_parsed_and_every_step_reaches_the_websocket(stack: Stack) -> None:
    port = free_port()
    api = ServiceProcess(
        [venv_command("rag-api")],
        {
            "DATABASE_URL": stack.dsn,
            **stack.s3,
            "JWT_SECRET": JWT_SECRET,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "LOG_FORMAT": "json",
            "EMBEDDING_PROVIDER": "hash",
        },
        stack.tmp_path / "api.log",
    ).start()
    stack.workers.append(api)  # stopped with the workers
    stack.start_worker()
    api.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)

    user = uuid.uuid4()
    now = int(time.time())
    token = jwt.encode({"sub": str(user), "iat": now, "exp": now + 600}, JWT_SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http,
        connect(f"ws://127.0.0.1:{port}/api/ws?token={token}", open_timeout=10) as ws,
    ):
        created = await http.post("/api/workspaces", json={"name": "e2e"})
        assert created.status_code == 201, created.text
        workspace_id = created.json()["id"]
        upload = await http.post(
            f"/api/workspaces/{workspace_id}/documents/upload",
            files=[
                ("files", ("multipage.pdf", (FIXTURES / "multipage.pdf").read_bytes(), "application/pdf"))
            ],
        )
        uploaded_at = time.monotonic()
        assert upload.status_code == 201, upload.text
        document = upload.json()["documents"][0]
        steps = []
        running_after = None
        while not steps or steps[-1] != ("job.status_updated", "ingest", "queued"):
            frame = await next_event(ws)
            payload = frame["payload"]
            if payload.get("document_id") != document["id"]:
                continue
            steps.append((frame["type"], payload.get("job_type"), payload["status"]))
            if steps[-1] == ("job.status_updated", "parse", "running"):
                running_after = time.monotonic() - uploaded_at
        assert steps == [
            ("document.created", None, "queued"),
            ("job.status_updated", "parse", "queued"),
            ("job.status_updated", "parse", "running"),
            ("document.status_updated", None, "parsing"),
            ("job.status_updated", "parse", "success"),
            ("document.status_updated", None, "parsed"),
            ("job.status_updated", "ingest", "queued"),
        ]
        # The worker was asleep on a 30 s poll: only the api's NOTIFY can explain this.
        assert running_after is not None and running_after < 1.0
        jobs = (await http.get(f"/api/documents/{document['id']}/jobs")).json()["items"]
        assert [(j["job_type"], j["status"], j["attempt"]) for j in jobs] == [
            ("parse", "success", 1),
            ("ingest", "queued", 0),
        ]
        assert (await http.get(f"/api/documents/{document['id']}")).json()["status"] == "parsed"
