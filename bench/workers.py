"""Worker processes: our wake-up and throughput with 1, 2 and 4 worker processes on one queue.

Every idle worker LISTENs on the queue's channel, so one INSERT wakes them all and all but
one find nothing to claim: the wake-up curve shows what that herd costs the one that wins.
Throughput: the processes start on an empty queue and wait, the backlog is inserted in
bulk, and one NOTIFY starts them together, so their counting windows overlap; the rate is
the sum of each process's starts over its own window (bench.jobworker). Each process runs
the `ours` kind of section 1 and 2 (running events in the claim, success events at the end),
concurrency 10 for throughput.
"""

from __future__ import annotations

import asyncio
import random
from statistics import median

from bench.common import Bench, Child, Row, Section, now_ns, percentile, warn
from bench.queues import Producer

PROCESSES = (1, 2, 4)
CONCURRENCY = 10
WARMUP_JOBS = 3


async def start_workers(bench: Bench, dsn: str, mode: str, processes: int, *args: str) -> list[Child]:
    children = [
        await Child.start(
            "bench.jobworker",
            "ours",
            dsn,
            mode,
            *args,
            log=bench.log_dir / f"workers-{mode}-{processes}-{i}.log",
        )
        for i in range(processes)
    ]
    for child in children:
        await child.expect("ready", timeout=60)
    return children


async def wakeup_run(bench: Bench, dsn: str, producer: Producer, processes: int, samples: int) -> list[float]:
    """Latencies (ms) from an INSERT's commit to the handler start, in whichever process claimed it."""
    await producer.reset()  # what a throughput run left queued
    children = await start_workers(bench, dsn, "wakeup", processes, "1")
    starts: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def forward(child: Child) -> None:
        while True:
            await starts.put(await child.expect("S", timeout=3600))

    readers = [asyncio.create_task(forward(c)) for c in children]
    latencies: list[float] = []
    try:
        for i in range(WARMUP_JOBS + samples):
            await asyncio.sleep(random.uniform(0.005, 0.025))
            key = await producer.insert_one()
            committed = now_ns()
            while True:
                msg = await asyncio.wait_for(starts.get(), 12)
                if msg["k"] == key:
                    break
            if i >= WARMUP_JOBS:
                latencies.append((int(str(msg["ns"])) - committed) / 1e6)
    except (TimeoutError, RuntimeError) as exc:
        warn(f"wake-up with {processes} processes failed ({exc!r}) after {len(latencies)} jobs")
    finally:
        for task in readers:
            task.cancel()
        for child in children:
            await child.stop()
    return latencies


async def throughput_run(
    bench: Bench, dsn: str, producer: Producer, processes: int, jobs: int, warmup: float, window: float
) -> float:
    """Jobs started per second by `processes` workers started together on a full queue."""
    await producer.reset()
    children = await start_workers(
        bench, dsn, "throughput", processes, str(CONCURRENCY), str(jobs), str(warmup), str(window)
    )
    try:
        await producer.insert_many(jobs)
        await producer.wake_workers()
        results = [await c.expect("result", timeout=warmup + window + 120) for c in children]
    except (TimeoutError, RuntimeError) as exc:
        warn(f"throughput with {processes} processes failed ({exc!r})")
        return float("nan")
    finally:
        for child in children:
            await child.stop()
    return sum(float(r["count"]) / float(r["seconds"]) for r in results if float(r["seconds"]) > 0)


async def run(bench: Bench) -> Section:
    runs = bench.runs(3)
    samples = 20 if bench.quick else 100
    jobs, warmup, window = (4_000, 0.3, 1.5) if bench.quick else (30_000, 0.5, 2.5)
    dsn = bench.database("workers", migrated=True)
    producer = Producer("ours", dsn)
    await producer.open()
    wake: dict[int, list[dict[str, float]]] = {p: [] for p in PROCESSES}
    rates: dict[int, list[float]] = {p: [] for p in PROCESSES}
    try:
        for _ in range(runs):
            for processes in PROCESSES:  # interleaved, as everywhere in the bench
                lat = await wakeup_run(bench, dsn, producer, processes, samples)
                wake[processes].append({"p50": percentile(lat, 50), "p99": percentile(lat, 99)})
                rates[processes].append(
                    await throughput_run(bench, dsn, producer, processes, jobs, warmup, window)
                )
    finally:
        await producer.close()
        bench.drop_database(dsn)

    def med(p: int, key: str) -> float:
        return median(r[key] for r in wake[p])

    rows: list[Row] = []
    for p in PROCESSES:
        rows += [
            Row(
                "workers",
                f"{p} process(es): wake-up p50",
                med(p, "p50"),
                "ms",
                runs=[r["p50"] for r in wake[p]],
            ),
            Row(
                "workers",
                f"{p} process(es): wake-up p99",
                med(p, "p99"),
                "ms",
                runs=[r["p99"] for r in wake[p]],
            ),
            Row(
                "workers",
                f"{p} process(es): jobs/s, concurrency {CONCURRENCY} each",
                median(rates[p]),
                "jobs/s",
                runs=rates[p],
            ),
        ]
    one = median(rates[1])
    table = [
        f"| worker processes | wake-up p50 | wake-up p99 | jobs/s (concurrency {CONCURRENCY} each) | × one process |",
        "|---|---|---|---|---|",
        *(
            f"| {p} | {med(p, 'p50'):.2f} ms | {med(p, 'p99'):.2f} ms | {median(rates[p]):,.0f} |"
            f" {median(rates[p]) / one:.2f}x |"
            for p in PROCESSES
        ),
    ]
    method = (
        f"Our worker (`ours` of sections 1 and 2) in 1, 2 and 4 processes on one queue of one database, "
        f"{runs} runs interleaved. Wake-up: all processes idle and listening, one job inserted at a random "
        f"moment ({samples} per run), latency from its commit to its handler's start in whichever process "
        f"claimed it. Throughput: the processes start on an empty queue, {jobs:,} jobs are inserted in bulk "
        f"over 100 workspaces and one NOTIFY wakes them all; each counts its starts over {window} s after its "
        f"first start + {warmup} s; the rate is their sum."
    )
    limits = (
        "The machine has 2 cores shared by Postgres, the bench and every worker process: beyond two "
        "processes they compete for the same cores, so the curve says what more processes cost here, not "
        "what they gain on a bigger machine. Every idle listener is woken by every INSERT (NOTIFY has no "
        "single-consumer mode); the losers each run an empty claim."
    )
    return Section(
        "workers", "Worker processes: wake-up and throughput", rows, method, limits, extra="\n".join(table)
    )
