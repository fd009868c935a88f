"""Child process: publishes events at a given rate, from outside the api (as the workers do).

    python -m bench.publisher MODE DSN USERS_FILE RATE SECONDS PER_TX CONNECTIONS

MODE `bus`: `rag_eventbus.publish` of `document.status_updated` events, PER_TX events (for
PER_TX consecutive users, round robin) in each transaction. MODE `raw`: the floor, one
`pg_notify('bench_raw', ...)` per transaction carrying the same events, no tables. RATE is
in events/s (0: as fast as the connections go). Prints `{"t":"ready"}`, waits for a line on
stdin, publishes for SECONDS, then prints `{"t":"done","commits":[[user index, id, ns]...]}`
where ns is the wall clock as COMMIT was sent (latencies include the commit).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import orjson
import psycopg

from bench.common import emit, now_ns
from rag_core.events import DocumentStatusUpdated, Event
from rag_eventbus import publish_and_number

RAW_CHANNEL = "bench_raw"


async def main(
    mode: str, dsn: str, users: list[dict[str, str]], rate: float, seconds: float, per_tx: int, conns: int
) -> None:
    index = {uuid.UUID(u["user"]): i for i, u in enumerate(users)}
    events = [
        Event.of(
            DocumentStatusUpdated(
                workspace_id=uuid.UUID(u["workspace"]), document_id=uuid.uuid4(), status="parsing", error=None
            )
        )
        for u in users
    ]
    raw_seq = [0] * len(users)
    connections = [await psycopg.AsyncConnection.connect(dsn) for _ in range(conns)]
    commits: list[list[int]] = []
    counter = 0
    emit({"t": "ready"})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(conn: psycopg.AsyncConnection[Any]) -> None:
        nonlocal counter
        while True:
            k = counter
            counter += 1
            due = start + k * per_tx / rate if rate > 0 else 0.0
            if due >= deadline or (rate <= 0 and time.perf_counter() >= deadline):
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            first = (k * per_tx) % len(users)
            targets = [(first + j) % len(users) for j in range(per_tx)]
            if mode == "bus":
                ids = await publish_and_number(conn, [events[t] for t in targets])
                ns = now_ns()  # as COMMIT is sent: latency includes the commit itself
                await conn.commit()
                for user_id, numbers in ids.items():
                    for n in numbers:
                        commits.append([index[user_id], n, ns])
            else:
                body: list[list[Any]] = []
                for t in targets:
                    raw_seq[t] += 1
                    body.append([t, raw_seq[t], events[t].type, events[t].payload])
                await conn.execute(
                    "SELECT pg_notify(%s, %s)", (RAW_CHANNEL, orjson.dumps({"e": body}).decode())
                )
                ns = now_ns()
                await conn.commit()
                commits.extend([t, s, ns] for t, s, _, _ in body)

    await asyncio.gather(*(loop(c) for c in connections))
    elapsed = time.perf_counter() - start
    for c in connections:
        await c.close()
    emit({"t": "done", "seconds": elapsed, "commits": commits})


if __name__ == "__main__":
    m, d, f, r, s, p, c = sys.argv[1:8]
    with open(f) as users_file:
        users_ = json.load(users_file)
    asyncio.run(main(m, d, users_, float(r), float(s), int(p), int(c)))
