"""Workers that die, hang or compete: every document is parsed exactly once."""

from __future__ import annotations

import os
import signal
import uuid

import anyio
import pytest

from rag_testing.prometheus import metric_value

from .conftest import Stack, log_lines, logged, metrics_text

pytestmark = pytest.mark.anyio


def children_of(pid: int) -> list[int]:
    """Extraction processes started by worker `pid` (their command line names it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"rag_parse_worker.child" in argv and str(pid).encode() in argv:
            found.append(int(entry))
    return found


async def parse_outcome(stack: Stack, up: object) -> dict[str, object]:
    document_id = up.document_id  # type: ignore[attr-defined]
    events = await stack.events(document_id)
    return {
        "parse_events": [(e["status"], e["attempt"]) for e in events if e["job_type"] == "parse"],
        "parsed_events": len(
            [e for e in events if e["type"] == "document.status_updated" and e["status"] == "parsed"]
        ),
        "ingest_jobs": await stack.count(
            "SELECT count(*) FROM ingest_jobs WHERE document_id = %s", document_id
        ),
    }


async def test_kill_9_mid_job_the_next_worker_takes_over_after_the_lease(stack: Stack) -> None:
    s3 = stack.slow_s3()
    first = stack.start_worker(job_lease_seconds=2, s3_endpoint_url=s3.url)
    s3.latency = 60  # the job is held in its download until the kill
    children = children_of(first.pid)
    assert len(children) == 2
    up = await stack.upload_fixture("multipage.pdf")
    await stack.wait_job(up.job_id, "running")
    first.process.kill()
    # The extraction processes do not outlive their worker.
    for _ in range(50):
        if not children_of(first.pid):
            break
        await anyio.sleep(0.1)
    assert children_of(first.pid) == []

    second = stack.start_worker(job_lease_seconds=2)
    await stack.wait_job(up.job_id, "success", timeout=20)
    assert await parse_outcome(stack, up) == {
        "parse_events": [("queued", 0), ("running", 1), ("running", 2), ("success", 2)],
        "parsed_events": 1,
        "ingest_jobs": 1,
    }
    assert await stack.document(up.document_id) == {"status": "parsed", "error": None, "page_count": 4}
    text = metrics_text(second)
    assert metric_value(text, "rag_jobs_claimed_total", queue="parse", kind="takeover") == 1


async def test_a_paused_worker_that_lost_its_lease_is_fenced_out(stack: Stack) -> None:
    """SIGSTOP (a long GC pause, a frozen VM): another worker takes the job over; when the
    first one wakes up and tries to finish, its fenced completion changes nothing."""
    s3 = stack.slow_s3()
    first = stack.start_worker(job_lease_seconds=1.5, s3_endpoint_url=s3.url)
    s3.latency = 2  # each S3 answer: the job is held in its download
    up = await stack.upload_fixture("report.docx")
    await stack.wait_job(up.job_id, "running")
    first.process.signal(signal.SIGSTOP)
    try:
        stack.start_worker(job_lease_seconds=1.5)
        await stack.wait_job(up.job_id, "success", timeout=20)
    finally:
        first.process.signal(signal.SIGCONT)
    await anyio.sleep(3)  # the first worker's download ends; it tries to finish
    assert first.process.alive()
    assert await parse_outcome(stack, up) == {
        "parse_events": [("queued", 0), ("running", 1), ("running", 2), ("success", 2)],
        "parsed_events": 1,
        "ingest_jobs": 1,
    }
    events = {x.get("event") for x in log_lines(first)}
    assert events & {"job_lease_lost", "lease_lost"}, events


async def test_two_workers_two_hundred_documents_each_parsed_exactly_once(stack: Stack) -> None:
    workers = [stack.start_worker(job_lease_seconds=10) for _ in range(2)]
    original = stack.put_object(f"shared/{uuid.uuid4()}", b"two hundred documents, one text")
    uploads = [
        await stack.upload(f"doc-{i}.txt", b"two hundred documents, one text", shared_key=original)
        for i in range(200)
    ]
    await stack.wait_for("SELECT count(*) FROM parse_jobs WHERE status = 'success'", expect=200, timeout=60)
    assert await stack.count("SELECT max(attempt) FROM parse_jobs") == 1  # nobody ran a job twice
    assert await stack.count("SELECT count(*) FROM ingest_jobs") == 200
    assert await stack.count("SELECT count(DISTINCT document_id) FROM ingest_jobs") == 200
    assert await stack.count("SELECT count(*) FROM documents WHERE status = 'parsed'") == 200
    assert (
        await stack.count(
            "SELECT count(*) FROM events WHERE type = 'job.status_updated'"
            " AND payload->>'status' = 'success' AND payload->>'job_type' = 'parse'"
        )
        == 200
    )
    done_by = [
        {x["job_id"] for x in lines} for lines in await logged(workers, "document_parsed", 200, timeout=30)
    ]
    assert not done_by[0] & done_by[1]
    unlogged = {str(u.job_id) for u in uploads} - (done_by[0] | done_by[1])
    # Every line that names a job missing from the parsed lines, raw: a late line, a line
    # that is not JSON, or a job that really did not run tell apart there.
    mentions = [
        line for w in workers for line in w.log_text().splitlines() if any(j in line for j in unlogged)
    ]
    assert not unlogged, (unlogged, mentions)
    claims = [metric_value(metrics_text(w), "rag_jobs_claimed_total", queue="parse") for w in workers]
    assert sum(claims) == 200 and min(claims) > 0, claims
