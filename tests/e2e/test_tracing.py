"""One upload is one trace across the three processes, and its log lines name it (issue 16, 3 and 5).

The real stack (hypercorn api, parse worker, ingest worker, embedded Postgres, moto S3)
exports over OTLP/HTTP to an in-test collector (rag_testing.otlp), exactly as it would to a
real one. One upload, sent with a W3C `traceparent` of the test's own, must come back as
one trace: the api's request span (the child of that header), the parse job's span and its
S3 get / extract / S3 put, the ingest job's span and its S3 get / chunk / embed / COPY, and a
`realtime send` span for every frame the owner's WebSocket received, each the child of the
span its event was published in. Then the services' own log lines: every line of the
request and of both jobs carries its request_id / job_id and the trace's id.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from rag_testing.otlp import CollectedSpan, OtlpCollector, tree
from rag_testing.pytest_plugin import module_system
from rag_testing.system import System
from rag_testing.wsclient import EventCollector

UPLOAD_ROUTE = "POST /api/workspaces/{workspace_id}/documents/upload"
TEXT = b"The cartographer mapped every fjord of the northern coast.\n\nThen she slept.\n"


@dataclass
class Upload:
    system: System
    collector: OtlpCollector
    log_dir: Path
    trace_id: str
    caller_span_id: str  # the span id of the test's traceparent header
    request_id: str
    owner: uuid.UUID
    document_id: str
    frames: list[dict[str, Any]]  # the owner's event frames about the document


@pytest.fixture(scope="module")
def upload(pg_admin_dsn: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upload]:
    log_dir = tmp_path_factory.mktemp("tracing")
    with (
        OtlpCollector() as collector,
        module_system(pg_admin_dsn, s3_server, log_dir, "tracing", **collector.env) as system,
    ):
        owner = uuid.uuid4()
        api = system.client(owner)
        workspace = api.post("/api/workspaces", json={"name": "traced"}).json()["id"]
        trace_id, caller, request_id = secrets.token_hex(16), secrets.token_hex(8), uuid.uuid4().hex

        async def upload_and_watch() -> tuple[str, list[dict[str, Any]]]:
            async with EventCollector(system.api.ws_url, system.token(owner)) as ws:
                response = api.post(
                    f"/api/workspaces/{workspace}/documents/upload",
                    files=[("files", ("fjords.txt", TEXT, "text/plain"))],
                    headers={"traceparent": f"00-{trace_id}-{caller}-01", "x-request-id": request_id},
                )
                assert response.status_code == 201, response.text
                document_id = response.json()["documents"][0]["id"]

                def about(frame: dict[str, Any]) -> bool:
                    return bool(frame.get("payload", {}).get("document_id") == document_id)

                await ws.wait_for(
                    lambda f: (
                        about(f)
                        and f["type"] == "document.status_updated"
                        and f["payload"]["status"] == "ingested"
                    ),
                    timeout=120,
                )
                return document_id, [f for f in ws.events if about(f)]

        document_id, frames = asyncio.run(upload_and_watch())
        yield Upload(system, collector, log_dir, trace_id, caller, request_id, owner, document_id, frames)


def one(spans: list[CollectedSpan], service: str, name: str, parent: str | None = None) -> CollectedSpan:
    found = [
        s
        for s in spans
        if s.service == service and s.name == name and (parent is None or s.parent_id == parent)
    ]
    assert len(found) == 1, (service, name, parent, tree(spans))
    return found[0]


def the_whole_trace(upload: Upload) -> list[CollectedSpan]:
    """The upload's trace once every span the test expects has been exported."""
    frame_ids = {f["id"] for f in upload.frames}

    def complete(spans: list[CollectedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == upload.trace_id]
        names = {(s.service, s.name) for s in mine}
        sent = {s.attributes.get("event.id") for s in mine if s.name == "realtime send"}
        return {
            ("rag-api", UPLOAD_ROUTE),
            ("rag-parse-worker", "parse job"),
            ("rag-ingest-worker", "ingest job"),
            ("rag-ingest-worker", "COPY chunks"),
        } <= names and frame_ids <= sent

    upload.collector.wait_for(complete, timeout=60)
    spans = upload.collector.trace(upload.trace_id)
    (upload.log_dir / "trace.txt").write_text(tree(spans) + "\n")
    return spans


def test_one_upload_is_one_trace_from_the_request_through_both_jobs_to_each_frame(upload: Upload) -> None:
    spans = the_whole_trace(upload)

    # The request's span continues the caller's traceparent (same trace id, the caller's span as parent).
    request = one(spans, "rag-api", UPLOAD_ROUTE)
    assert request.kind == "server" and request.parent_id == upload.caller_span_id
    assert request.attributes.get("http.route") == "/api/workspaces/{workspace_id}/documents/upload"

    # The parse job's run is the child of the request that queued it; its steps are its children.
    parse = one(spans, "rag-parse-worker", "parse job", parent=request.span_id)
    assert parse.kind == "consumer" and parse.attributes["job.outcome"] == "success"
    for step in ("s3 get", "extract", "s3 put"):
        one(spans, "rag-parse-worker", step, parent=parse.span_id)

    # The ingest job was queued inside the parse job's span: its run is that span's child.
    ingest = one(spans, "rag-ingest-worker", "ingest job", parent=parse.span_id)
    assert ingest.attributes["job.outcome"] == "success"
    for step in ("s3 get", "chunk", "embed", "COPY chunks"):
        one(spans, "rag-ingest-worker", step, parent=ingest.span_id)

    # Every frame the owner received has its send span, the child of the span its event was
    # published in: the request (created, parse queued, and the parse claim's events, which
    # carry the context the job stored), the parse job (its success, parsed, ingest queued, and
    # the ingest claim's), the ingest job (its success, ingested).
    sends = {
        s.attributes["event.id"]: s
        for s in spans
        if s.name == "realtime send" and s.attributes.get("user.id") == str(upload.owner)
    }
    published_in = {
        ("document.created", None, "queued"): request,
        ("job.status_updated", "parse", "queued"): request,
        ("job.status_updated", "parse", "running"): request,
        ("document.status_updated", None, "parsing"): request,
        ("job.status_updated", "parse", "success"): parse,
        ("document.status_updated", None, "parsed"): parse,
        ("job.status_updated", "ingest", "queued"): parse,
        ("job.status_updated", "ingest", "running"): parse,
        ("document.status_updated", None, "ingesting"): parse,
        ("job.status_updated", "ingest", "success"): ingest,
        ("document.status_updated", None, "ingested"): ingest,
    }

    # The contexts were stored as W3C traceparents: with each job row (the span current at its
    # enqueue) and with each event row (the span current at its publish).
    def traceparent(parent: CollectedSpan) -> str:
        return f"00-{upload.trace_id}-{parent.span_id}-01"

    doc = upload.document_id
    jobs = upload.system.sql(
        "SELECT 'parse', traceparent FROM parse_jobs WHERE document_id = %(d)s"
        " UNION ALL SELECT 'ingest', traceparent FROM ingest_jobs WHERE document_id = %(d)s",
        {"d": doc},
    )
    assert dict(jobs) == {"parse": traceparent(request), "ingest": traceparent(parse)}
    stored = dict(
        upload.system.sql(
            "SELECT id, traceparent FROM events WHERE user_id = %s AND id = ANY(%s)",
            (upload.owner, [f["id"] for f in upload.frames]),
        )
    )
    seen = []
    for frame in upload.frames:
        key = (frame["type"], frame["payload"].get("job_type"), frame["payload"]["status"])
        seen.append(key)
        send = sends[frame["id"]]
        assert send.service == "rag-api" and send.kind == "producer"
        assert send.attributes["event.type"] == frame["type"]
        assert send.parent_id == published_in[key].span_id, (key, tree(spans))
        assert stored[frame["id"]] == traceparent(published_in[key])
    assert seen == list(published_in)

    # One trace: everything above shares the caller's trace id (collector.trace filtered on it),
    # and no span of either job's run went to another trace.
    runs = [s for s in upload.collector.spans if s.name in ("parse job", "ingest job")]
    assert {s.trace_id for s in runs} == {upload.trace_id}


def test_a_request_without_traceparent_starts_a_trace_of_its_own(upload: Upload) -> None:
    created = [s for s in upload.collector.spans if s.name == "POST /api/workspaces"]
    assert len(created) == 1
    assert created[0].parent_id == "" and created[0].trace_id != upload.trace_id


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(orjson.loads(line))
    return lines


def test_every_log_line_of_the_request_and_of_both_jobs_carries_its_id_and_the_trace_id(
    upload: Upload,
) -> None:
    spans = the_whole_trace(upload)
    job_ids = {
        one(spans, "rag-parse-worker", "parse job").attributes["job.id"],
        one(spans, "rag-ingest-worker", "ingest job").attributes["job.id"],
    }
    by_service = {s.name: json_lines(s.process.log_text()) for s in upload.system.services}
    request_lines = [line for line in by_service["api0"] if line.get("request_id") == upload.request_id]
    job_lines = [
        line for name in ("parse0", "ingest0") for line in by_service[name] if line.get("job_id") in job_ids
    ]
    # The lines the work is known to write (more are welcome, and checked the same way).
    assert "request" in {line["event"] for line in request_lines}
    events = {line["event"] for line in job_lines}
    assert {"job_succeeded", "document_parsed", "document_ingested"} <= events, events
    for line in request_lines + job_lines:
        assert line.get("trace_id") == upload.trace_id, line
        assert len(line.get("span_id", "")) == 16, line
    for line in job_lines:
        assert line.get("job_id") in job_ids, line
