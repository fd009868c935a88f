"""Run extractions in child processes: off the event loop, killable, crash-contained.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

from rag_parse_worker import metrics
from rag_parse_worker.extract import (
    CorruptFile,
    EncryptedFile,
    Extracted,
    ExtractionError,
    ExtractionTimeout,
    LimitExceeded,
    Limits,
    NoTextFound,
    UnsupportedFormat,
)

log = structlog.get_logger("rag_parse_worker.isolation")

CRASHED = "The file could not be read: the text extractor stopped unexpectedly on it."
START_TIMEOUT = 60.0

_ERRORS: dict[str, type[ExtractionError]] = {
    cls.__name__: cls
    for cls in (ExtractionError, CorruptFile, EncryptedFile, LimitExceeded, NoTextFound, UnsupportedFormat)
}


class ExtractorFailure(Exception):
    """A bug or an unexpected error inside the extraction process: worth a retry."""


@dataclass(frozen=True, slots=True)
class Timed:
    result: Extracted
    seconds: float


class _Child:
    """One extraction process. Blocking methods: call them from a thread."""

    def __init__(self, limits: Limits, memory_limit_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rag_parse_worker.child", str(os.getpid()), str(memory_limit_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._to = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._from = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        try:
            self._to.send(limits)
            if not self._from.poll(START_TIMEOUT) or self._from.recv() != ("ready",):
                raise RuntimeError("the extraction process did not start")
        except BaseException:
            self.kill()
            raise

    def call(self, request: tuple[bytes, str, str], timeout: float) -> tuple[Any, ...]:
        """Send one request and wait for its reply: TimeoutError, or EOFError/OSError if the child died."""
        try:
            self._to.send(request)
        except OSError:
            # The child quit while reading (out of memory): its last words may be waiting.
            if self._from.poll(1.0):
                reply: tuple[Any, ...] = self._from.recv()
                return reply
            raise
        if not self._from.poll(timeout):
            raise TimeoutError
        reply = self._from.recv()
        return reply

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(5)
        for conn in (self._to, self._from):
            with contextlib.suppress(Exception):
                conn.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._to.send(None)
        with contextlib.suppress(Exception):
            self.process.wait(2)
        self.kill()


class ExtractionPool:
    """`await pool.extract(data, filename, content_type)` in one of `size` child processes."""

    def __init__(self, size: int, limits: Limits, timeout: float, memory_limit_mb: int = 0) -> None:
        self.size = size
        self.limits = limits
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        # One waiting thread per child; kills and spawns use the loop's default executor, so a
        # replacement never waits for a thread that is itself waiting on the killed child.
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="extract")
        self._idle: asyncio.Queue[_Child] | None = None
        self._children: set[_Child] = set()

    def _spawn(self) -> _Child:
        child = _Child(self.limits, self.memory_limit_mb)
        self._children.add(child)
        return child

    async def _replace(self, child: _Child, reason: str) -> _Child:
        """Kill `child` at once (which also ends the thread waiting on it) and start another."""
        metrics.EXTRACTOR_RESTARTS.labels(reason=reason).inc()
        with contextlib.suppress(Exception):
            child.process.kill()
        self._children.discard(child)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, child.kill)  # reap it
        return await loop.run_in_executor(None, self._spawn)

    async def start(self) -> None:
        """Start every child (each imports the extractors once, ~0.2 s, in parallel)."""
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
                self._threads, child.call, (data, filename, content_type), self.timeout
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
            except (EOFError, OSError, ValueError) as exc:
                log.warning("extractor_died", error=repr(exc), exitcode=child.process.poll())
                child = await self._replace(child, "crash")
                raise CorruptFile(CRASHED) from None
            if reply[0] == "fatal":  # the child ran out of memory mid-message and exits
                child = await self._replace(child, "memory")
        finally:
            self._idle.put_nowait(child)
        status = reply[0]
        if status == "ok":
            return Timed(result=reply[1], seconds=reply[2])
        if status in ("error", "fatal"):
            _, name, message, code = reply
            error = _ERRORS.get(name, ExtractionError)(message)
            error.code = code
            raise error
        raise ExtractorFailure(reply[1])


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody waits for any more (after a cancellation)."""
    if not future.cancelled():
        future.exception()
