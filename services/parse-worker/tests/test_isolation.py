"""The extraction processes: timeouts, cancellation, crashes and memory caps stay contained."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from rag_parse_worker import child as child_module
from rag_parse_worker import metrics
from rag_parse_worker.extract import (
    CorruptFile,
    ExtractionTimeout,
    LimitExceeded,
    Limits,
    NoTextFound,
    OcrUnavailable,
)
from rag_parse_worker.isolation import CRASHED, ExtractionPool
from rag_parse_worker.wire import Bug, Failed
from rag_testing import scans

from .conftest import ocr_config

pytestmark = [pytest.mark.anyio, pytest.mark.integration]  # real child processes

FIXTURES = Path(__file__).parent / "fixtures"
SLOW_HTML = b"<p>w</p>" * 600_000  # several seconds of html.parser


def child_pids(pool: ExtractionPool) -> set[int]:
    return {c.process.pid for c in pool._children}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purpose only if reaped; Popen.wait reaps it.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] == "Z"


async def test_extracts_in_a_child_process_and_reports_errors(pool: ExtractionPool) -> None:
    timed = await pool.extract((FIXTURES / "multipage.pdf").read_bytes(), "m.pdf", "application/pdf")
    assert timed.result.page_count == 4 and timed.seconds > 0
    with pytest.raises(NoTextFound) as info:
        await pool.extract(b"   ", "blank.txt", "text/plain")
    assert info.value.code == "no_text"
    with pytest.raises(CorruptFile):
        await pool.extract((FIXTURES / "corrupt.pdf").read_bytes(), "c.pdf", "application/pdf")


SCANS = scans.scanned_pdf([scans.page_image(page) for page in scans.PAGES * 2])  # six pages


@pytest.mark.parametrize("pool", [{"timeout": 1.5, "ocr": ocr_config()}], indirect=True)
async def test_ocr_in_the_child_gets_a_page_timeout_per_page_on_top_of_the_document_timeout(
    pool: ExtractionPool,
) -> None:
    """Six scanned pages take longer than the 1.5 s PARSE_TIMEOUT_SECONDS here: each page the
    child reads by OCR extends the deadline, so the scan is read rather than stopped."""
    (before,) = child_pids(pool)
    pages = metrics.OCR_PAGES._value.get()
    timed = await pool.extract(SCANS, "scan.pdf", "application/pdf")
    assert timed.seconds > 1.5, "the scan was too quick to show the extension"
    assert timed.result.page_count == 6
    assert scans.accuracy(timed.result.text, " ".join(" ".join(p) for p in scans.PAGES * 2)) >= 0.98
    assert metrics.OCR_PAGES._value.get() - pages == 6
    assert child_pids(pool) == {before}


@pytest.mark.parametrize("pool", [{"ocr": ocr_config(page_timeout_seconds=0.001)}], indirect=True)
async def test_a_page_over_its_ocr_timeout_fails_the_document_with_that_reason(pool: ExtractionPool) -> None:
    with pytest.raises(ExtractionTimeout) as info:
        await pool.extract(SCANS, "scan.pdf", "application/pdf")
    assert info.value.message == "Reading page 1 by OCR took longer than 0.001 seconds."
    assert info.value.code == "timeout"


async def test_a_worker_without_ocr_says_so_for_a_scan(pool: ExtractionPool) -> None:
    with pytest.raises(OcrUnavailable) as info:
        await pool.extract(scans.encode(scans.page_image(["x"]), "PNG"), "scan.png", "image/png")
    assert info.value.code == "ocr_unavailable"


@pytest.mark.parametrize("pool", [{"timeout": 0.3}], indirect=True)
async def test_a_document_over_the_timeout_is_stopped_and_the_process_replaced(pool: ExtractionPool) -> None:
    (before,) = child_pids(pool)
    with pytest.raises(ExtractionTimeout) as info:
        await pool.extract(SLOW_HTML, "slow.html", "text/html")
    assert info.value.message == "Reading the file took longer than 0.3 seconds and was stopped."
    assert gone(before) and child_pids(pool) != {before}
    assert (await pool.extract(b"next one", "n.txt", "text/plain")).result.text == "next one"


async def test_cancellation_kills_the_work(pool: ExtractionPool) -> None:
    (before,) = child_pids(pool)
    task = asyncio.create_task(pool.extract(SLOW_HTML, "slow.html", "text/html"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gone(before)
    assert (await pool.extract(b"after", "a.txt", "text/plain")).result.text == "after"


async def test_a_crash_fails_that_file_only(pool: ExtractionPool) -> None:
    (pid,) = child_pids(pool)
    task = asyncio.create_task(pool.extract(SLOW_HTML, "slow.html", "text/html"))
    await asyncio.sleep(0.3)
    os.kill(pid, signal.SIGKILL)  # what a segfault in PDFium would look like
    with pytest.raises(CorruptFile) as info:
        await task
    assert info.value.message == CRASHED
    assert (await pool.extract(b"fine", "a.txt", "text/plain")).result.text == "fine"
    # A child that dies while idle is replaced before it is used.
    (pid,) = child_pids(pool)
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.1)
    assert (await pool.extract(b"still fine", "a.txt", "text/plain")).result.text == "still fine"


# 300 MB: the child alone (Python, PDFium, Pillow, Tesseract's libraries) maps ~150 MB of it.
@pytest.mark.parametrize("pool", [{"memory_limit_mb": 300}], indirect=True)
async def test_the_memory_cap_is_a_readable_error(pool: ExtractionPool) -> None:
    with pytest.raises(LimitExceeded) as info:
        await pool.extract(b"x" * (80 * 1024 * 1024), "huge.txt", "text/plain")
    assert info.value.message == child_module.OUT_OF_MEMORY
    assert (await pool.extract(b"small", "a.txt", "text/plain")).result.text == "small"


def test_a_bug_or_a_memory_error_in_the_child_is_a_reply_not_a_death(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(child_module, "extract", broken)
    assert child_module.handle(b"x", "a.txt", "", Limits()) == Bug("KeyError: 'oops'")

    def hungry(*_args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(child_module, "extract", hungry)
    assert child_module.handle(b"x", "a.txt", "", Limits()) == Failed(
        "LimitExceeded", child_module.OUT_OF_MEMORY, "limit_exceeded"
    )
