"""The extraction process: `python -m rag_parse_worker.child PARENT_PID MEMORY_LIMIT_MB`.

Started by `isolation.ExtractionPool` as a plain subprocess (not multiprocessing, whose
spawn/forkserver re-import the parent's main module). Protocol over stdin/stdout, each
message a length-prefixed pickle (multiprocessing.connection.Connection framing), only
ever between this process and the worker that started it:

    worker -> child: Limits once, then (data, filename, content_type) per document, None to stop
    child -> worker: ("ready",) once, then one reply per document:
                     ("ok", Extracted, seconds) | ("error", class name, message, code) | ("bug", text)
                     | ("fatal", class name, message, code): an error after which the child exits

The child ignores SIGINT/SIGTERM (the worker decides when it stops), exits at EOF on
stdin (the worker closed it or died), and a watchdog exits it mid-document if the
worker is gone, so it never outlives a `kill -9` of the worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from rag_parse_worker.extract import ExtractionError, LimitExceeded, Limits, extract

OUT_OF_MEMORY = "The file needs more memory to read than a document may use."


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    import resource

    cap = megabytes * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def handle(request: tuple[bytes, str, str], limits: Limits) -> tuple[Any, ...]:
    data, filename, content_type = request
    started = time.perf_counter()
    try:
        result = extract(data, filename, content_type, limits)
        return ("ok", result, time.perf_counter() - started)
    except ExtractionError as exc:
        return ("error", type(exc).__name__, exc.message, exc.code)
    except MemoryError:
        return ("error", "LimitExceeded", OUT_OF_MEMORY, LimitExceeded.code)
    except Exception as exc:  # a bug: report it rather than die
        return ("bug", f"{type(exc).__name__}: {exc}")


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent_pid, memory_limit_mb = int(argv[0]), int(argv[1])
    # The protocol owns fds 0 and 1; anything printed goes to stderr (the worker's log).
    incoming = Connection(os.dup(0), writable=False)
    outgoing = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    _limit_memory(memory_limit_mb)
    # Past the memory cap even receiving a document or sending its text can fail: then say
    # so ("fatal": the worker replaces this process, whose pipe may hold half a message) and exit.
    fatal = ("fatal", "LimitExceeded", OUT_OF_MEMORY, LimitExceeded.code)
    try:
        limits: Limits = incoming.recv()
        outgoing.send(("ready",))
        while True:
            try:
                request = incoming.recv()
            except MemoryError:
                outgoing.send(fatal)
                return 1
            if request is None:
                return 0
            reply = handle(request, limits)
            del request
            try:
                outgoing.send(reply)
            except MemoryError:
                del reply
                outgoing.send(fatal)
                return 1
    except (EOFError, OSError):
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
