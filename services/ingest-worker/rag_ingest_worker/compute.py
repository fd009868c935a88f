"""The CPU-bound steps of an ingest job run in child processes, never on the event loop.

Why a process and not ``asyncio.to_thread``: a regular-expression match (or any single C
call) holds the GIL until it returns, so a thread running it freezes the event loop too:
no heartbeat renews the job's lease, ``/healthz`` stops answering, the lease expires and
the next worker takes the job over and freezes the same way. In a child process the
computation only costs a core; the worker's loop keeps heartbeating and serving probes.

Shape: ``size`` slots (WORKER_CONCURRENCY: one per job that may run at once), each a
``ProcessPoolExecutor`` of one ``spawn``-ed process, so that killing one job's runaway
computation never breaks another job's. A slot is replaced (its process killed) when the
job awaiting it is cancelled (timeout, lease lost, shutdown): a computation never outlives
its job. A child that dies (OOM killer, crash) is replaced too, and the call is tried once
more; a call that kills two children raises ``ComputeCrashed`` (a transient error: the
job is retried with backoff, then failed).

Children receive the text and return plain tuples (offsets, page, heading), not chunk
objects with their text: the parent already holds the text, and unpickling 80,000 small
tuples costs the loop a few tens of milliseconds where whole chunks would cost several
times that.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import structlog

from rag_ingest_worker.chunking import Chunk, chunk_text

log = structlog.get_logger("rag_ingest_worker.compute")

T = TypeVar("T")
Span = tuple[int, int, int | None, str | None]  # char_start, char_end, page, heading


class ComputeCrashed(Exception):
    """The child process died during the computation (killed, out of memory, crashed)."""


def chunk_spans(text: str) -> list[Span]:
    """Runs in the child: the chunks of ``text`` without their text (see the module doc)."""
    return [(c.char_start, c.char_end, c.page, c.heading) for c in chunk_text(text)]


def _child_start() -> None:
    """Runs in the child at start.

    The worker alone decides when a child stops (it kills the child with its job): a
    Ctrl-C or SIGTERM sent to the whole process group (a terminal, `make dev`) must not
    interrupt a child mid-call or make it print a KeyboardInterrupt traceback. And the
    kernel kills the child when the worker dies (Linux), so a computation cannot outlive
    a worker that was killed without closing its pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def child_pid() -> int:
    """Runs in the child: starts it (warm-up) and tells which process serves the slot."""
    return os.getpid()


def chunks_from_spans(text: str, spans: list[Span]) -> list[Chunk]:
    return [Chunk(n, text[s:e], s, e, page, heading) for n, (s, e, page, heading) in enumerate(spans)]


class _Slot:
    """One child process, with the pid it runs under once started."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.executor = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_child_start)
        self.pid: int | None = None

    def kill(self) -> None:
        # ProcessPoolExecutor has no public way to stop a running call (3.14 adds
        # terminate_workers); its process table is the documented-by-typeshed way in.
        for process in list(self.executor._processes.values()):
            process.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)


class ComputePool:
    """``size`` child processes for CPU-bound calls; see the module docstring."""

    def __init__(self, size: int, *, start_method: str = "spawn") -> None:
        if size < 1:
            raise ValueError("a compute pool needs at least one process")
        self.size = size
        self._context = multiprocessing.get_context(start_method)
        self._slots: list[_Slot] = [_Slot(self._context) for _ in range(size)]
        self._free: asyncio.Queue[_Slot] | None = None
        self.replaced = 0  # children killed or found dead and replaced (a metric for tests)

    def start(self) -> list[int]:
        """Start every child now (blocking; at service start) so the first job pays nothing."""
        for slot in self._slots:
            slot.pid = slot.executor.submit(child_pid).result(timeout=60)
        return self.pids()

    def pids(self) -> list[int]:
        return [slot.pid for slot in self._slots if slot.pid is not None]

    def _queue(self) -> asyncio.Queue[_Slot]:
        if self._free is None:
            self._free = asyncio.Queue()
            for slot in self._slots:
                self._free.put_nowait(slot)
        return self._free

    def _replace(self, slot: _Slot, why: str) -> _Slot:
        slot.kill()
        fresh = _Slot(self._context)
        self._slots[self._slots.index(slot)] = fresh
        self.replaced += 1
        log.warning("compute_process_replaced", reason=why, old_pid=slot.pid)
        return fresh

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a free child (waits for one); ``fn`` and its arguments must pickle.

        A child found dead is replaced and the call tried once more in the new one (the
        child may have died while idle, before this call reached it); a call that kills
        two children raises ``ComputeCrashed``.
        """
        free = self._queue()
        slot = await free.get()
        try:
            for attempt in (1, 2):
                try:
                    future = slot.executor.submit(fn, *args)
                except BrokenProcessPool:
                    slot = self._replace(slot, "died")
                    continue
                try:
                    return await asyncio.wrap_future(future)
                except BrokenProcessPool:
                    slot = self._replace(slot, "died")
                    if attempt == 2:
                        break
                except BaseException:
                    # Cancelled (the job timed out, lost its lease or the worker stops): a
                    # computation still running would outlive its job, so its process goes.
                    if not future.done():
                        slot = self._replace(slot, "cancelled")
                    raise
            raise ComputeCrashed("The text processing stopped unexpectedly.")
        finally:
            free.put_nowait(slot)

    async def chunk(self, text: str) -> list[Chunk]:
        """``chunk_text(text)``, computed in a child process."""
        return chunks_from_spans(text, await self.run(chunk_spans, text))

    def close(self) -> None:
        for slot in self._slots:
            slot.kill()
