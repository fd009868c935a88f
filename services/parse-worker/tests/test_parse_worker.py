"""`rag-parse-worker` as a real process: the happy path, the contract's events, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psycopg
import pytest

from rag_core.queues import INGEST_QUEUE, queue_document_job
from rag_core.storage_keys import original_key
from rag_devstack.procs import venv_command
from rag_parse_worker.extract import UNREADABLE
from rag_testing.faults import TcpProxy
from rag_testing.prometheus import metric_value

from .conftest import Stack, log_lines, logged, metrics_text

pytestmark = pytest.mark.anyio


async def test_every_format_is_parsed_with_the_contract_events(stack: Stack) -> None:
    worker = stack.start_worker(job_max_attempts=4)
    with psycopg.connect(stack.dsn, autocommit=True) as listen:
        listen.execute("LISTEN ingest_jobs")
        uploads = {
            name: await stack.upload_fixture(name)
            for name in (
                "multipage.pdf",
                "report.docx",
                "page.html",
                "utf16-bom.txt",
                "latin1.txt",
                "notes.md",
            )
        }
        for up in uploads.values():
            await stack.wait_job(up.job_id, "success")
        rung = {n.payload for n in listen.notifies(timeout=2, stop_after=len(uploads))}

    pdf = uploads["multipage.pdf"]
    # docs/contract.md §5, as a member sees it (the first two events are the api's part).
    assert [
        (e["type"], e["job_type"], e["status"], e["attempt"]) for e in await stack.events(pdf.document_id)
    ] == [
        ("document.created", None, "queued", None),
        ("job.status_updated", "parse", "queued", 0),
        ("job.status_updated", "parse", "running", 1),
        ("document.status_updated", None, "parsing", None),
        ("job.status_updated", "parse", "success", 1),
        ("document.status_updated", None, "parsed", None),
        ("job.status_updated", "ingest", "queued", 0),
    ]
    assert await stack.document(pdf.document_id) == {"status": "parsed", "error": None, "page_count": 4}
    key = f"workspaces/{stack.workspace_id}/documents/{pdf.document_id}/parsed.txt"
    text = stack.get_object(key).decode("utf-8")
    assert text.split("\f") == [
        "Page one: the quick brown fox\njumps over the lazy dog.",
        "Page two: café crème brûlée\ncosts 5 €.",
        "",
        "Page four: the end.",
    ]
    cur = await stack.conn.execute(
        "SELECT object_key, size_bytes, content_type FROM files WHERE document_id = %s AND kind = 'parsed'",
        (pdf.document_id,),
    )
    assert await cur.fetchone() == (key, len(text.encode()), "text/plain; charset=utf-8")

    docx_text = stack.get_object(
        f"workspaces/{stack.workspace_id}/documents/{uploads['report.docx'].document_id}/parsed.txt"
    ).decode()
    assert "Region\tSales\tGrowth\nNorth\t1,200\t5 %" in docx_text
    html_text = stack.get_object(
        f"workspaces/{stack.workspace_id}/documents/{uploads['page.html'].document_id}/parsed.txt"
    ).decode()
    assert "Café & Bakery" in html_text and "secret" not in html_text and "title" not in html_text

    # One queued ingest job per document, with JOB_MAX_ATTEMPTS, each rung on ingest_jobs.
    cur = await stack.conn.execute("SELECT id, document_id, status, attempt, max_attempts FROM ingest_jobs")
    ingest = await cur.fetchall()
    assert sorted(r[1] for r in ingest) == sorted(u.document_id for u in uploads.values())
    assert {(r[2], r[3], r[4]) for r in ingest} == {("queued", 0, 4)}
    assert rung == {str(r[0]) for r in ingest}

    await logged([worker], "job_succeeded", 6)  # a job's last line, just before its metrics
    text_metrics = metrics_text(worker)
    assert metric_value(text_metrics, "rag_parse_documents_total", outcome="parsed") == 6
    assert metric_value(text_metrics, "rag_jobs_finished_total", queue="parse", outcome="success") == 6
    assert metric_value(text_metrics, "rag_parse_pdf_pages_total") == 4
    parsed_logs = [line for line in log_lines(worker) if line.get("event") == "document_parsed"]
    assert len(parsed_logs) == 6
    assert {line["job_id"] for line in parsed_logs} == {str(u.job_id) for u in uploads.values()}
    assert all(line["document_id"] and line["service"] == "rag-parse-worker" for line in parsed_logs)


async def test_unreadable_files_fail_at_once_with_a_readable_error(stack: Stack) -> None:
    # Without OCR, so that a scan's garbage text layer is refused here (with OCR its page is
    # read from the pixels: tests/test_ocr.py).
    stack.start_worker(ocr_provider="off")
    cases = {
        "corrupt.pdf": "The file is not a valid PDF.",
        "encrypted.pdf": "The PDF is encrypted and cannot be read. Upload a copy without a password.",
        "blank.pdf": "No text could be extracted from the file.",
        "pdf/issue-301.pdf": UNREADABLE["pdf"],  # a garbage text layer: refused, not indexed
    }
    uploads = {name: await stack.upload_fixture(name, max_attempts=5) for name in cases}
    fake_docx = await stack.upload("report.docx", b"this is not a zip file")
    for up in [*uploads.values(), fake_docx]:
        await stack.wait_job(up.job_id, "failed")
    for name, message in cases.items():
        up = uploads[name]
        job = await stack.job(up.job_id)
        message = f"{message} (ref job {up.job_id})"  # the extractor's sentence, then the reference
        assert (job["attempt"], job["last_error"]) == (1, message)
        assert await stack.document(up.document_id) == {
            "status": "error",
            "error": message,
            "page_count": None,
        }
        assert [
            (e["type"], e["status"], e["attempt"], e["error"]) for e in await stack.events(up.document_id)
        ][2:] == [
            ("job.status_updated", "running", 1, None),
            ("document.status_updated", "parsing", None, None),
            ("job.status_updated", "failed", 1, message),
            ("document.status_updated", "error", None, message),
        ]
    assert (await stack.document(fake_docx.document_id))[
        "error"
    ] == f"The file is not a valid Word document (.docx). (ref job {fake_docx.job_id})"
    assert await stack.count("SELECT count(*) FROM ingest_jobs") == 0


async def test_an_object_larger_than_its_row_says_fails_at_once(stack: Stack) -> None:
    """The size check before the download trusts the row; the download's own cap catches a lie."""
    up = await stack.upload("notes.txt", b"small")
    stack.put_object(original_key(stack.workspace_id, up.document_id), b"x" * (1024 * 1024 + 1))
    stack.start_worker(MAX_UPLOAD_BYTES=str(1024 * 1024))
    await stack.wait_job(up.job_id, "failed")
    job = await stack.job(up.job_id)
    message = f"The file is larger than the 1 MB limit and was not read. (ref job {up.job_id})"
    assert (job["attempt"], job["last_error"]) == (1, message)
    assert (await stack.document(up.document_id))["error"] == message


async def test_object_store_outage_is_retried_with_backoff_then_succeeds(stack: Stack) -> None:
    host, port = stack.s3["S3_ENDPOINT_URL"].removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port)).start()
    try:
        stack.start_worker(s3_endpoint_url=f"http://127.0.0.1:{proxy.port}", job_retry_base_seconds=0.5)
        proxy.cut()
        up = await stack.upload_fixture("notes.md")  # stored through moto directly, not the proxy
        await stack.wait_for(
            "SELECT attempt >= 2 FROM parse_jobs WHERE id = %s AND status = 'queued'", up.job_id, timeout=30
        )
        proxy.restore()
        await stack.wait_job(up.job_id, "success", timeout=30)
    finally:
        proxy.stop()
    job = await stack.job(up.job_id)
    assert job["attempt"] >= 3 and job["last_error"] is None
    events = [e for e in await stack.events(up.document_id) if e["job_type"] == "parse"]
    retries = job["attempt"] - 1
    expected = [("queued", 0)]
    for attempt in range(1, retries + 1):
        expected += [("running", attempt), ("queued", attempt)]
    expected += [("running", retries + 1), ("success", retries + 1)]
    assert [(e["status"], e["attempt"]) for e in events] == expected
    storage_error = f"The file storage could not be reached. (ref job {up.job_id})"  # never S3's host
    assert [e["error"] for e in events if e["status"] == "queued"] == [None] + [storage_error] * retries
    assert events[-1]["error"] is None
    cur = await stack.conn.execute(
        "SELECT payload->>'run_at', created_at FROM events WHERE type = 'job.status_updated'"
        " AND payload->>'status' = 'queued' AND (payload->>'attempt')::int >= 1 ORDER BY id"
    )
    delays = [
        (__import__("datetime").datetime.fromisoformat(run_at) - created).total_seconds()
        for run_at, created in await cur.fetchall()
    ]
    assert all(d > 0.2 for d in delays), delays  # backoff: base 0.5 s x jitter [0.5, 1.5)
    assert (await stack.document(up.document_id))["status"] == "parsed"
    assert await stack.count("SELECT count(*) FROM ingest_jobs") == 1


async def test_sigterm_finishes_a_running_job_within_the_grace_period(stack: Stack) -> None:
    s3 = stack.slow_s3()
    worker = stack.start_worker(worker_shutdown_grace_seconds=15, s3_endpoint_url=s3.url)
    s3.latency = 0.75  # download and upload: the job takes 1.5 s more
    up = await stack.upload_fixture("notes.md")
    await stack.wait_job(up.job_id, "running")
    worker.process.signal(signal.SIGTERM)
    assert worker.process.proc is not None and worker.process.proc.wait(20) == 0
    assert (await stack.job(up.job_id))["status"] == "success"
    assert (await stack.document(up.document_id))["status"] == "parsed"


async def test_sigterm_releases_a_job_that_outlasts_the_grace_period(stack: Stack) -> None:
    s3 = stack.slow_s3()
    worker = stack.start_worker(worker_shutdown_grace_seconds=0.5, s3_endpoint_url=s3.url)
    s3.latency = 60  # the job is held in its download far past the grace period
    up = await stack.upload_fixture("notes.md")
    await stack.wait_job(up.job_id, "running")
    started = time.monotonic()
    worker.process.signal(signal.SIGTERM)
    assert worker.process.proc is not None and worker.process.proc.wait(20) == 0
    assert time.monotonic() - started < 10
    job = await stack.job(up.job_id)
    assert (job["status"], job["attempt"], job["locked_by"]) == ("queued", 0, None)  # no attempt burned
    assert [e["status"] for e in await stack.events(up.document_id) if e["job_type"] == "parse"] == [
        "queued",
        "running",
        "queued",
    ]
    # The next worker takes it from there.
    stack.start_worker()
    await stack.wait_job(up.job_id, "success")
    assert (await stack.job(up.job_id))["attempt"] == 1


@pytest.mark.integration  # starts the worker's process
def test_a_missing_setting_stops_the_worker_with_one_clear_line() -> None:
    env = {"PATH": os.environ.get("PATH", ""), "S3_BUCKET": "b", "MAX_PDF_PAGES": "0"}
    result = subprocess.run(
        [venv_command("rag-parse-worker")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "configuration error: DATABASE_URL is required",
        "configuration error: MAX_PDF_PAGES is invalid: Input should be greater than or equal to 1",
    ]


async def test_a_queued_ingest_job_of_the_document_is_reused_not_doubled(stack: Stack) -> None:
    """Re-parsing a document whose ingest job has not started yet (a reprocess, a takeover
    racing a slow commit) leaves one ingest job: it will read the newest parsed text."""
    up = await stack.upload_fixture("notes.md", notify=False)
    queued = await queue_document_job(stack.conn, INGEST_QUEUE, up.document_id, stack.workspace_id, 5)
    stack.start_worker()  # its first claim runs at start, no NOTIFY needed
    await stack.wait_job(up.job_id, "success")
    assert await stack.count("SELECT count(*) FROM ingest_jobs") == 1
    ingest_events = [e for e in await stack.events(up.document_id) if e["job_type"] == "ingest"]
    assert [(e["job_id"], e["status"]) for e in ingest_events] == [(str(queued.id), "queued")]
