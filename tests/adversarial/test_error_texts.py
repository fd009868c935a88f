"""Error texts a user sees are safe: a sentence and a reference, never a host, URL, key or upstream body.

Real processes (api, parse and ingest workers) whose embedding service and language model
are one small OpenAI-compatible server on an internal-looking URL that fails with a
body full of secrets: embeddings answer 500 (transient: the ingest job retries, then
gives up), chat completions answer 401 (permanent: the answer fails at once). Every
`error` the user can read, over REST and over the WebSocket, for the job, the document
and the message, is checked; the workers' logs must hold the details under the same id.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest

from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import Service, System
from rag_testing.wsclient import EventCollector

pytestmark = pytest.mark.anyio

UPSTREAM_SECRET = "sk-live-7Hq2UPSTREAMc0ffee"
INTERNAL_ADDRESS = "10.20.30.40:8443"
GATEWAY_PATH = "internal-gateway-7f3a"
EMBEDDING_KEY = "sk-embed-KEY-d00d"
LLM_KEY = "sk-llm-KEY-beef"
UPSTREAM_BODY = json.dumps(
    {
        "error": {
            "message": f"backend {INTERNAL_ADDRESS} failed; debug token {UPSTREAM_SECRET}",
            "trace": "Traceback (most recent call last): File /srv/gateway/app.py",
        }
    }
).encode()


@pytest.fixture
def upstream() -> Iterator[str]:
    """The failing server; its base URL names a host (localhost) and an internal path."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(500 if self.path.endswith("/embeddings") else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(UPSTREAM_BODY)))
            self.end_headers()
            self.wfile.write(UPSTREAM_BODY)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/{GATEWAY_PATH}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def system(system_factory: SystemFactory, upstream: str) -> System:
    started = system_factory(
        workers=False,
        JOB_MAX_ATTEMPTS="2",
        LLM_PROVIDER="openai",
        LLM_BASE_URL=upstream,
        LLM_MODEL="gateway-model",
        LLM_API_KEY=LLM_KEY,
    )
    started.add_worker("parse")
    started.add_worker(
        "ingest",
        EMBEDDING_PROVIDER="openai",
        EMBEDDING_BASE_URL=upstream,
        EMBEDDING_MODEL="gateway-embeddings",
        EMBEDDING_API_KEY=EMBEDDING_KEY,
        EMBEDDING_TIMEOUT_SECONDS="4",
    )
    return started


def forbidden(upstream: str) -> list[str]:
    """Whatever would tell a user about our insides."""
    port = upstream.split(":")[2].split("/")[0]
    return [
        "localhost",
        "127.0.0.1",
        port,
        GATEWAY_PATH,
        "http",
        "/v1",
        UPSTREAM_SECRET,
        INTERNAL_ADDRESS,
        "Traceback",
        "backend",
        EMBEDDING_KEY,
        LLM_KEY,
        "Bearer",
        "Error(",  # an exception repr
    ]


def assert_safe(text: object, job_id: str, upstream: str) -> None:
    assert isinstance(text, str) and text, text
    for needle in forbidden(upstream):
        assert needle not in text, (needle, text)
    assert text.endswith(f"ref job {job_id})"), text
    assert text[0].isupper() and "." in text, text  # a sentence, not an identifier


def log_lines(service: Service) -> list[dict[str, Any]]:
    lines = []
    for line in service.process.log_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def service(system: System, name: str) -> Service:
    return next(s for s in system.services if s.name == name)


def wait_for(predicate: Any, timeout: float, system: System) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, system.logs()
        time.sleep(0.1)
    return value


async def test_errors_name_no_host_url_key_or_upstream_body_but_the_job_id(
    system: System, upstream: str, database_url: str
) -> None:
    owner = uuid.uuid4()
    api = system.client(owner)
    workspace = api.post("/api/workspaces", json={"name": "errors"}).json()["id"]
    async with EventCollector(system.api.ws_url, system.token(owner)) as ws:
        # 1. A document whose embedding fails: 500s with secrets in the body, two job attempts.
        upload = api.post(
            f"/api/workspaces/{workspace}/documents/upload",
            files=[("files", ("notes.txt", b"Some words to embed.\n", "text/plain"))],
        )
        assert upload.status_code == 201, upload.text
        document_id = upload.json()["documents"][0]["id"]
        document = wait_for(
            lambda: (d := api.get(f"/api/documents/{document_id}").json())["status"] == "error" and d,
            timeout=120,
            system=system,
        )
        jobs = api.get(f"/api/documents/{document_id}/jobs").json()["items"]
        ingest_job = next(j for j in jobs if j["job_type"] == "ingest")
        assert (ingest_job["status"], ingest_job["attempt"]) == ("failed", 2)

        # 2. A question whose answer the model refuses: 401 with secrets in the body.
        conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
            "id"
        ]
        reply_id = api.post(f"/api/conversations/{conversation}/messages", json={"content": "Words?"}).json()[
            "reply"
        ]["id"]
        await ws.wait_for(
            lambda f: (
                f.get("type") == "message.status_updated"
                and f["payload"]["message_id"] == reply_id
                and f["payload"]["status"] == "failed"
            ),
            timeout=60,
        )
        await ws.wait_for(
            lambda f: (
                f.get("type") == "document.status_updated"
                and f["payload"]["document_id"] == document_id
                and f["payload"]["status"] == "error"
            ),
            timeout=10,
        )
        events = list(ws.events)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id FROM answer_jobs WHERE message_id = %s", (reply_id,)).fetchone()
    assert row is not None
    answer_job_id = str(row[0])
    ingest_job_id = ingest_job["id"]

    # What the user reads, everywhere: REST (job, document, message) and WebSocket events.
    assert_safe(ingest_job["error"], ingest_job_id, upstream)
    assert_safe(document["error"], ingest_job_id, upstream)
    assert "embedding service" in document["error"] and "gave up after 2 attempts" in document["error"]
    messages = api.get(f"/api/conversations/{conversation}/messages").json()["items"]
    reply = next(m for m in messages if m["id"] == reply_id)
    assert reply["status"] == "failed"
    assert_safe(reply["error"], answer_job_id, upstream)
    assert "language model" in reply["error"]
    seen = []
    for event in events:
        payload = event["payload"]
        if payload.get("error") is None:
            continue
        job_id = answer_job_id if event["type"] == "message.status_updated" else ingest_job_id
        assert_safe(payload["error"], job_id, upstream)
        seen.append((event["type"], payload.get("status")))
    assert ("job.status_updated", "queued") in seen  # the retried attempt
    assert ("job.status_updated", "failed") in seen
    assert ("document.status_updated", "error") in seen
    assert ("message.status_updated", "failed") in seen

    # The operator finds the details in the log, under the id the user quotes.
    ingest_logs = [
        line
        for line in log_lines(service(system, "ingest0"))
        if line.get("event") == "embedding_request_failed" and line.get("job_id") == ingest_job_id
    ]
    assert ingest_logs, service(system, "ingest0").process.log_text()[-3000:]
    assert all(f"localhost:{upstream.split(':')[2]}" in line["url"] for line in ingest_logs)
    assert any(UPSTREAM_SECRET in line.get("body", "") for line in ingest_logs)
    assert {line["status"] for line in ingest_logs} == {500}
    answer_logs = [
        line
        for line in log_lines(system.api)
        if line.get("event") == "llm_request_failed" and line.get("job_id") == answer_job_id
    ]
    assert answer_logs and UPSTREAM_SECRET in answer_logs[0]["body"] and GATEWAY_PATH in answer_logs[0]["url"]
    # ... and the log holds no credential either.
    for text in (service(system, "ingest0").process.log_text(), system.api.process.log_text()):
        assert EMBEDDING_KEY not in text and LLM_KEY not in text


def test_the_upstream_really_answers_what_the_test_says(upstream: str) -> None:
    """The fixture's server leaks what the texts above must not show (else they prove nothing)."""
    with httpx.Client() as client:
        embeddings = client.post(f"{upstream}/embeddings", json={"input": ["x"]})
        chat = client.post(f"{upstream}/chat/completions", json={})
    assert (embeddings.status_code, chat.status_code) == (500, 401)
    assert UPSTREAM_SECRET in embeddings.text and INTERNAL_ADDRESS in chat.text
