"""The extraction process: `python -m rag_parse_worker.child PARENT_PID MEMORY_LIMIT_MB CPU_SECONDS CPU_LIFETIME`.

Started by `isolation.ExtractionPool` as a plain subprocess (not multiprocessing, whose
spawn/forkserver re-import the parent's main module and speak pickle), with an
environment that holds no secret, in its own session. It confines itself
(`sandbox.apply_child_limits`) before it reads a single byte, then speaks the frames of
`rag_parse_worker.wire` over stdin/stdout: the limits once, then one document per
request, one reply each (after a progress message per page it reads by OCR).

The child ignores SIGINT/SIGTERM (the worker decides when it stops), exits at EOF on
stdin (the worker closed it or died), and a watchdog exits it mid-document if the
worker is gone, so it never outlives a `kill -9` of the worker.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from rag_parse_worker import sandbox, wire
from rag_parse_worker.extract import ExtractionError, LimitExceeded, Limits, Ocr, Tesseract, extract
from rag_parse_worker.extract.ocr import PAGE_GRACE_SECONDS

OUT_OF_MEMORY = "The file needs more memory to read than a document may use."
FATAL = wire.Failed("LimitExceeded", OUT_OF_MEMORY, LimitExceeded.code, fatal=True)
MAX_DOCUMENT_BYTES = 2**32 - 1  # the frame's length field; the worker enforces the upload limit


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text[: wire.MAX_BUG_CHARS]) or "?"


def handle(
    data: bytes, filename: str, content_type: str, limits: Limits, ocr: Ocr | None = None
) -> wire.Reply:
    started = time.perf_counter()
    try:
        result = extract(data, filename, content_type, limits, ocr)
        return wire.Ok(result, time.perf_counter() - started)
    except ExtractionError as exc:
        return wire.Failed(type(exc).__name__, exc.message, exc.code)
    except MemoryError:
        return wire.Failed("LimitExceeded", OUT_OF_MEMORY, LimitExceeded.code)
    except Exception as exc:  # a bug: report it rather than die
        return wire.Bug(_printable(f"{type(exc).__name__}: {exc}"))


def _request(header: wire.Header) -> tuple[str, str] | None:
    """(filename, content_type) of an extract request; None for stop."""
    if header.get("type") == "stop":
        return None
    filename, content_type = header.get("filename"), header.get("content_type")
    if header.get("type") != "extract" or not isinstance(filename, str) or not isinstance(content_type, str):
        raise wire.ProtocolViolation("not an extract request")
    return filename, content_type


def serve(incoming: int, outgoing: int, memory_limit_mb: int, cpu_budget: int, cpu_lifetime: int) -> int:
    sandbox.apply_child_limits(memory_limit_mb, cpu_budget, cpu_lifetime)
    # Past the memory cap even receiving a document or sending its text can fail: then say
    # so ("fatal": the worker replaces this process, whose pipe may hold half a message) and exit.
    try:
        raw, _ = wire.receive(incoming, max_body=0)
        header = wire.parse_header(raw)
        limits, ocr_config = wire.decode_limits(header), wire.decode_ocr(header)

        def before_ocr_page(page: int) -> None:
            # The worker extends its deadline by a page; so does the CPU budget, by as much.
            wire.send(outgoing, *wire.encode_reply(wire.Progress(page)))
            assert ocr_config is not None
            sandbox.renew_cpu_budget(
                sandbox.cpu_budget_seconds(ocr_config.page_timeout_seconds + PAGE_GRACE_SECONDS)
            )

        ocr = None if ocr_config is None else Tesseract(ocr_config, before_page=before_ocr_page)
        wire.send(outgoing, wire.READY)
        while True:
            sandbox.renew_cpu_budget(cpu_budget)
            try:
                raw, data = wire.receive(incoming, max_body=MAX_DOCUMENT_BYTES)
            except MemoryError:
                wire.send(outgoing, *wire.encode_reply(FATAL))
                return 1
            request = _request(wire.parse_header(raw))
            if request is None:
                return 0
            reply = handle(data, *request, limits, ocr)
            del data
            try:
                header, body = wire.encode_reply(reply)
                del reply
                wire.send(outgoing, header, body)
            except MemoryError:
                wire.send(outgoing, *wire.encode_reply(FATAL))
                return 1
    except (EOFError, OSError):
        return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent_pid, memory_limit_mb, cpu_budget, cpu_lifetime = map(int, argv[:4])
    # The protocol owns fds 0 and 1; anything printed goes to stderr (the worker's log).
    incoming, outgoing = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    return serve(incoming, outgoing, memory_limit_mb, cpu_budget, cpu_lifetime)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
