"""Child process: one worker of one queue system, reporting its handler starts to the bench.

    python -m bench.jobworker SYSTEM DSN MODE CONCURRENCY [TOTAL WARMUP WINDOW]

MODE `wakeup`: prints `{"t":"S","k":<job key>,"ns":<wall clock ns>}` as each handler starts;
runs until stdin closes. MODE `throughput`: counts handler starts (jobs are queued before
the worker starts) and prints `{"t":"result","count","seconds"}`: the starts between
first start + WARMUP and WARMUP + WINDOW later (or the last start, if the queue ran dry
first), then exits. Both print `{"t":"ready"}` once the worker listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

from bench import trace
from bench.common import emit, now_ns, stdin_closed
from bench.queues import OURS_SYSTEMS, pgqueuer_driver, pgqueuer_manager, procrastinate_worker, run_ours
from rag_core import event_loop

PEER_SETTLE_SECONDS = 0.5  # peers give no "listening" signal: let their listener connect
FIRST_START_TIMEOUT = 60.0  # throughput: a worker that starts nothing in this long has failed


async def main(system: str, dsn: str, mode: str, concurrency: int, args: list[str]) -> None:
    stop = asyncio.Event()
    starts: list[float] = []
    first_start = asyncio.Event()
    total = int(args[0]) if args else 0
    warmup = float(args[1]) if len(args) > 1 else 0.0
    window = float(args[2]) if len(args) > 2 else 0.0
    write = sys.stdout.write
    flush = sys.stdout.flush

    tracing = bool(os.environ.get("BENCH_TRACE")) and system in OURS_SYSTEMS
    if tracing:
        trace.install()

    def on_start_wakeup(key: str) -> None:
        ns = now_ns()
        if tracing:
            s = trace.STATE
            write(
                f'{{"t":"S","k":"{key}","ns":{ns},"notify":{s["notify"]},"c0":{s["claim0"]},"c1":{s["claim1"]}}}\n'
            )
        else:
            write(f'{{"t":"S","k":"{key}","ns":{ns}}}\n')
        flush()

    def on_start_count(_key: str) -> None:
        starts.append(time.perf_counter())
        first_start.set()
        if len(starts) >= total:
            stop.set()

    on_start = on_start_wakeup if mode == "wakeup" else on_start_count

    async def stop_when_done() -> None:
        if mode == "wakeup":
            await stdin_closed()
        else:
            try:
                await asyncio.wait_for(first_start.wait(), FIRST_START_TIMEOUT)
            except TimeoutError:
                print(f"no job started in {FIRST_START_TIMEOUT:.0f} s", file=sys.stderr)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), warmup + window)
            report()  # before the worker's shutdown, whatever that takes
        stop.set()

    def report() -> None:
        first = starts[0] if starts else 0.0
        begin = first + warmup
        end = min(begin + window, starts[-1] if starts else begin)
        counted = sum(1 for t in starts if begin < t <= end)
        emit({"t": "result", "count": counted, "seconds": end - begin, "started": len(starts)})

    async def until_stopped(task: asyncio.Task[None]) -> None:
        """Wait for `stop`; if the worker's own task ends first, its exception ends this process."""
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, task], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done() and not stop.is_set():
            task.result()  # raises what killed the worker
            raise RuntimeError(f"the {system} worker stopped by itself")

    def ready() -> None:
        emit({"t": "ready", "pid": os.getpid()})

    stopper = asyncio.create_task(stop_when_done())
    if system in OURS_SYSTEMS:
        await run_ours(system, dsn, concurrency, on_start, ready, stop)
    elif system == "procrastinate":
        app, _ = procrastinate_worker(dsn, concurrency, on_start)
        async with app.open_async():
            task = asyncio.create_task(
                app.run_worker_async(concurrency=concurrency, install_signal_handlers=False)
            )
            await asyncio.sleep(PEER_SETTLE_SECONDS)
            ready()
            await until_stopped(task)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    elif system.startswith("pgqueuer"):
        driver, conn = await pgqueuer_driver(system, dsn)
        try:
            # Wake-up: its default (no concurrency limit). With a limit of 1 a finished job holds
            # the slot until its buffered status is flushed, and the next dequeue waits 100 ms.
            qm = pgqueuer_manager(driver, 0 if mode == "wakeup" else concurrency, on_start)
            task = asyncio.create_task(qm.run())
            await asyncio.sleep(PEER_SETTLE_SECONDS)
            ready()
            await until_stopped(task)
            qm.shutdown.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        finally:
            await conn.close()
    else:
        raise SystemExit(f"unknown system {system}")
    stopper.cancel()
    if tracing:
        emit({"t": "statements", "ms": trace.statement_summary()})


if __name__ == "__main__":
    system_, dsn_, mode_, concurrency_, *rest = sys.argv[1:]
    # Ours on the services' loop (uvloop), ours-asyncio and the peers on asyncio's, their default.
    loop: event_loop.LoopChoice = (
        "auto" if system_ in OURS_SYSTEMS and system_ != "ours-asyncio" else "asyncio"
    )
    event_loop.run(main(system_, dsn_, mode_, int(concurrency_), rest), loop)
