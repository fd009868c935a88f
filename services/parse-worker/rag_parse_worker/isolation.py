"""Run extractions in child processes: off the event loop, killable, crash-contained, confined.

Why processes and not threads:
- the timeout per document must really stop the work: a thread cannot be killed, a
  process can (SIGKILL), and a replacement is started at once;
- PDFium is C code fed with untrusted files: a crash or runaway allocation there takes
  down one extraction process, not the worker with its other jobs and its heartbeats;
- PDFium is not thread-safe, so threads would be serialised anyway, and pure-Python
  parsing (HTML, docx) would compete with the event loop for the GIL.

One long-lived child (`rag_parse_worker.child`, a plain subprocess) per slot,
`WORKER_CONCURRENCY` of them. A call ships the bytes over the child's stdin and waits
for the reply in a dedicated thread. On timeout, cancellation (lease lost, shutdown) or
death of the child, the child is killed and replaced. A crash on a file is a permanent
error for that file (the same bytes would crash it again); a bug reported by the child
is transient.

The child is treated as possibly hostile (a file may exploit PDFium): it gets no secret
(`sandbox`), it confines itself before reading anything, and its replies are plain
frames checked field by field (`wire`): a reply that breaks the protocol is a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

import structlog

from rag_parse_worker import metrics, sandbox, wire
from rag_parse_worker.extract import (
    CorruptFile,
    Extracted,
    ExtractionTimeout,
    Limits,
    OcrConfig,
)
from rag_parse_worker.extract.ocr import PAGE_GRACE_SECONDS, READS_PER_DOCUMENT, longest_extraction_seconds

log = structlog.get_logger("rag_parse_worker.isolation")

CRASHED = "The file could not be read: the text extractor stopped unexpectedly on it."
START_TIMEOUT = 60.0
LAST_WORDS_TIMEOUT = 1.0  # a child that quit while reading may still say why
MAX_LOGGED_LINE = 1000
MAX_LOGGED_LINES = 200  # per child: a hostile one must not fill the worker's log
CHILD_COMMAND = (sys.executable, "-m", "rag_parse_worker.child")


class ExtractorFailure(Exception):
    """A bug or an unexpected error inside the extraction process: worth a retry."""


@dataclass(frozen=True, slots=True)
class Timed:
    result: Extracted
    seconds: float


def _forward_output(stream: IO[bytes], pid: int) -> None:
    """The child's stderr, line by line, into the worker's log (it may not write files);
    past MAX_LOGGED_LINES it is still drained (the child must not block) but not logged."""
    logged = 0
    with contextlib.suppress(Exception):
        for line in iter(lambda: stream.readline(MAX_LOGGED_LINE), b""):
            text = line.decode("utf-8", "replace").rstrip()
            if not text or logged > MAX_LOGGED_LINES:
                continue
            logged += 1
            if logged > MAX_LOGGED_LINES:
                log.warning("extractor_output_truncated", pid=pid, lines=MAX_LOGGED_LINES)
            else:
                log.warning("extractor_output", pid=pid, line=text)


class _Child:
    """One extraction process. Blocking methods: call them from a thread."""

    def __init__(
        self,
        limits: Limits,
        ocr: OcrConfig | None,
        memory_limit_mb: int,
        cpu_budget: int,
        command: Sequence[str],
    ) -> None:
        self.limits = limits
        self.ocr = ocr
        self.cpu_budget = cpu_budget
        # The CPU of the longest OCR a document may add (the child extends its budget page by
        # page): the lifetime cap holds it on top of CPU_LIFETIME_DOCUMENTS budgets, and a child
        # is retired while a whole such document still fits.
        self.ocr_cpu = math.ceil(longest_extraction_seconds(0, ocr))
        self.cpu_lifetime = sandbox.cpu_lifetime_seconds(cpu_budget) + self.ocr_cpu
        self.process = subprocess.Popen(
            [*command, str(os.getpid()), str(memory_limit_mb), str(cpu_budget), str(self.cpu_lifetime)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # its own process group: killed as a whole, no terminal signals
            env=sandbox.child_environment(os.environ),
        )
        assert self.process.stdin and self.process.stdout and self.process.stderr
        self._to = self.process.stdin.fileno()
        self._from = self.process.stdout.fileno()
        os.set_blocking(self._to, False)
        os.set_blocking(self._from, False)
        threading.Thread(
            target=_forward_output, args=(self.process.stderr, self.process.pid), daemon=True
        ).start()
        try:
            deadline = time.monotonic() + START_TIMEOUT
            wire.send(self._to, wire.limits_header(limits, ocr), deadline=deadline)
            wire.decode_ready(*wire.receive(self._from, max_body=0, deadline=deadline))
        except BaseException as exc:
            self.kill()
            if not isinstance(exc, Exception):
                raise
            raise RuntimeError("the extraction process did not start") from exc

    def call(self, data: bytes, filename: str, content_type: str, timeout: float) -> wire.Outcome:
        """Send one document and wait for the reply: TimeoutError; EOFError/OSError if the
        child died; ProtocolViolation if it answered something the protocol does not allow.

        Each page the child reads by OCR (a progress message first) extends the deadline by
        that page's timeout, up to READS_PER_DOCUMENT * max_pages pages: more is a violation.
        """
        deadline = time.monotonic() + timeout
        try:
            wire.send(self._to, wire.extract_header(filename, content_type), data, deadline)
        except OSError:
            # The child quit while reading (out of memory): its last words may be waiting.
            deadline = time.monotonic() + LAST_WORDS_TIMEOUT
        pages = 0
        while True:
            reply = wire.decode_reply(*self._receive(deadline), self.limits)
            if not isinstance(reply, wire.Progress):
                return reply
            pages += 1
            if self.ocr is None or pages > READS_PER_DOCUMENT * self.ocr.max_pages:
                raise wire.ProtocolViolation("more pages read by OCR than a document may have")
            metrics.OCR_PAGES.inc()
            deadline = max(deadline, time.monotonic() + self.ocr.page_timeout_seconds + PAGE_GRACE_SECONDS)

    def _receive(self, deadline: float) -> tuple[bytes, bytes]:
        return wire.receive(self._from, max_body=self.limits.max_text_bytes, deadline=deadline)

    def worn_out(self) -> bool:
        """Near its lifetime CPU cap: retire it before RLIMIT_CPU kills it mid-document."""
        used = sandbox.process_cpu_seconds(self.process.pid)
        return used + 2 * self.cpu_budget + self.ocr_cpu > self.cpu_lifetime

    def kill_now(self) -> None:
        """SIGKILL its whole process group (while not reaped: the pid cannot have been reused)."""
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.process.kill()

    def kill(self) -> None:
        self.kill_now()
        with contextlib.suppress(Exception):
            self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            wire.send(self._to, wire.STOP, deadline=time.monotonic() + 1.0)
        with contextlib.suppress(Exception):
            self.process.wait(2)
        self.kill()


class ExtractionPool:
    """`await pool.extract(data, filename, content_type)` in one of `size` child processes.

    `child_command` replaces `python -m rag_parse_worker.child` (tests start children that
    misbehave on purpose through the same code path).
    """

    def __init__(
        self,
        size: int,
        limits: Limits,
        timeout: float,
        memory_limit_mb: int = 0,
        *,
        ocr: OcrConfig | None = None,
        child_command: Sequence[str] = CHILD_COMMAND,
    ) -> None:
        self.size = size
        self.limits = limits
        self.ocr = ocr
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        # The CPU a document may use (a safety net beside the wall clock); each page it reads by
        # OCR adds a page's worth (child.py), as it extends the wall clock here.
        self.cpu_budget = sandbox.cpu_budget_seconds(timeout)
        self.child_command = tuple(child_command)
        # One waiting thread per child; kills and spawns use the loop's default executor, so a
        # replacement never waits for a thread that is itself waiting on the killed child.
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="extract")
        self._idle: asyncio.Queue[_Child] | None = None
        self._children: set[_Child] = set()

    def _spawn(self) -> _Child:
        child = _Child(self.limits, self.ocr, self.memory_limit_mb, self.cpu_budget, self.child_command)
        self._children.add(child)
        return child

    async def _replace(self, child: _Child, reason: str) -> _Child:
        """Kill `child` at once (which also ends the thread waiting on it) and start another."""
        metrics.EXTRACTOR_RESTARTS.labels(reason=reason).inc()
        child.kill_now()
        self._children.discard(child)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, child.kill)  # reap it
        return await loop.run_in_executor(None, self._spawn)

    async def start(self) -> None:
        """Start every child (each imports the extractors once, ~0.2 s, in parallel)."""
        sandbox.protect_worker()  # before any child exists: none may read our memory or environ
        loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        children = await asyncio.gather(
            *(loop.run_in_executor(self._threads, self._spawn) for _ in range(self.size))
        )
        for child in children:
            self._idle.put_nowait(child)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        children, self._children = list(self._children), set()
        await asyncio.gather(*(loop.run_in_executor(None, c.stop) for c in children))
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def extract(self, data: bytes, filename: str, content_type: str) -> Timed:
        """Raise ExtractionError (permanent, readable) or ExtractorFailure (a bug: transient)."""
        if self._idle is None:
            raise RuntimeError("ExtractionPool.start() was not awaited")
        loop = asyncio.get_running_loop()
        child = await self._idle.get()
        try:
            if child.process.poll() is not None:  # died while idle (OOM killer, an operator)
                child = await self._replace(child, "dead")
            future = loop.run_in_executor(
                self._threads, child.call, data, filename, content_type, self.timeout
            )
            future.add_done_callback(_consume)
            try:
                reply = await asyncio.shield(future)
            except asyncio.CancelledError:
                # Lease lost or shutdown: stop the work now; the waiting thread then ends too.
                child = await self._replace(child, "cancelled")
                raise
            except TimeoutError:
                child = await self._replace(child, "timeout")
                raise ExtractionTimeout(
                    f"Reading the file took longer than {self.timeout:g} seconds and was stopped."
                ) from None
            except wire.ProtocolViolation as exc:
                log.error("extractor_broke_protocol", reason=str(exc), pid=child.process.pid)
                child = await self._replace(child, "protocol")
                raise CorruptFile(CRASHED) from None
            except (EOFError, OSError, ValueError) as exc:
                log.warning("extractor_died", error=repr(exc), exitcode=child.process.poll())
                child = await self._replace(child, "crash")
                raise CorruptFile(CRASHED) from None
            if isinstance(reply, wire.Failed) and reply.fatal:  # out of memory mid-message: it exits
                child = await self._replace(child, "memory")
            elif child.worn_out():
                child = await self._replace(child, "recycled")
        finally:
            self._idle.put_nowait(child)
        if isinstance(reply, wire.Ok):
            return Timed(result=reply.result, seconds=reply.seconds)
        if isinstance(reply, wire.Failed):
            error = wire.ERROR_CLASSES[reply.name](reply.message)
            error.code = reply.code
            raise error
        raise ExtractorFailure(reply.text)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody waits for any more (after a cancellation)."""
    if not future.cancelled():
        future.exception()
