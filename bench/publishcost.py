"""Publish cost against the number of workspace members: the write amplification of per-user streams.

An event of a workspace is stored once per member, under the next id of each member's own
stream (rag_eventbus `publish`): a `user_streams` row locked and updated and an `events` row
inserted per member, in the producer's transaction. This measures what one event costs as
the team grows: a workspace of 1, 10, 100 and 1,000 members (the largest WORKSPACE_MAX_MEMBERS
allows), one `document.status_updated` per transaction from one connection, as a worker
publishes. Figures per event: the transaction's round trip (BEGIN, publish, COMMIT), the WAL
it writes, and that time per member.
"""

from __future__ import annotations

import time
import uuid
from statistics import median
from typing import Any

import psycopg

from bench.common import Bench, Row, Section, percentile
from rag_core.events import DocumentStatusUpdated, Event
from rag_eventbus import publish

MEMBERS = (1, 10, 100, 1000)
# Events published per size and run: the same wall time roughly, more for the cheap sizes.
EVENTS = {1: 400, 10: 400, 100: 200, 1000: 60}
WARMUP = 5

MAKE_WORKSPACE = """
WITH w AS (INSERT INTO workspaces (name, created_by) VALUES ('members-' || %(n)s, gen_random_uuid()) RETURNING id)
INSERT INTO workspace_members (workspace_id, user_id, role)
SELECT w.id, gen_random_uuid(), CASE WHEN g = 1 THEN 'owner' ELSE 'member' END
FROM w, generate_series(1, %(n)s) g
RETURNING workspace_id
"""
WAL_LSN = "SELECT pg_current_wal_lsn()"
WAL_BYTES = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)"


def workspace_with(conn: psycopg.Connection[Any], members: int) -> uuid.UUID:
    rows = conn.execute(MAKE_WORKSPACE, {"n": members}).fetchall()
    conn.execute("ANALYZE workspace_members")
    return uuid.UUID(str(rows[0][0]))


async def one_size(dsn: str, workspace: uuid.UUID, events: int) -> dict[str, float]:
    """ms per event (p50, p99) and WAL bytes per event, publishing `events` one per transaction."""
    event = Event.of(
        DocumentStatusUpdated(workspace_id=workspace, document_id=uuid.uuid4(), status="parsing", error=None)
    )
    times: list[float] = []
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(WAL_LSN)
        row = await cur.fetchone()
        assert row is not None
        wal_start = row[0]
        await conn.commit()
        for i in range(WARMUP + events):
            t0 = time.perf_counter()
            async with conn.transaction():
                await publish(conn, [event])
            if i >= WARMUP:
                times.append((time.perf_counter() - t0) * 1000)
        cur = await conn.execute(WAL_BYTES, (wal_start,))
        row = await cur.fetchone()
        assert row is not None
        wal = float(row[0])
        await conn.commit()
    return {"p50": percentile(times, 50), "p99": percentile(times, 99), "wal": wal / (WARMUP + events)}


async def run(bench: Bench) -> Section:
    runs = bench.runs(3)
    scale = 10 if bench.quick else 1
    dsn = bench.database("publishcost", migrated=True)
    results: dict[int, list[dict[str, float]]] = {m: [] for m in MEMBERS}
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            workspaces = {m: workspace_with(conn, m) for m in MEMBERS}
        for _ in range(runs):
            for members in MEMBERS:  # interleaved
                events = max(10, EVENTS[members] // scale)
                results[members].append(await one_size(dsn, workspaces[members], events))
    finally:
        bench.drop_database(dsn)

    def med(m: int, key: str) -> float:
        return median(r[key] for r in results[m])

    rows: list[Row] = []
    for m in MEMBERS:
        rows += [
            Row(
                "publishcost",
                f"{m} member(s): ms per event p50",
                med(m, "p50"),
                "ms",
                runs=[r["p50"] for r in results[m]],
            ),
            Row(
                "publishcost",
                f"{m} member(s): ms per event p99",
                med(m, "p99"),
                "ms",
                runs=[r["p99"] for r in results[m]],
            ),
            Row("publishcost", f"{m} member(s): WAL per event", med(m, "wal") / 1024, "KiB"),
        ]
    base = med(1, "p50")
    table = [
        "| members | per event p50 | p99 | × one member | per member | WAL per event |",
        "|---|---|---|---|---|---|",
        *(
            f"| {m:,} | {med(m, 'p50'):.2f} ms | {med(m, 'p99'):.2f} ms | {med(m, 'p50') / base:.1f}x |"
            f" {med(m, 'p50') * 1000 / m:,.1f} µs | {med(m, 'wal') / 1024:,.1f} KiB |"
            for m in MEMBERS
        ),
    ]
    method = (
        f"One workspace per size with 1, 10, 100 and 1,000 members in a fresh database; for each, "
        f"{', '.join(f'{EVENTS[m] // scale:,}' for m in MEMBERS)} `document.status_updated` events "
        f"published one per transaction (BEGIN, `publish`, COMMIT) from one connection, after {WARMUP} "
        f"unmeasured ones; {runs} runs, sizes interleaved, medians of the per-run p50 and p99. WAL: "
        "`pg_wal_lsn_diff` over the run, per event."
    )
    limits = (
        "One connection publishing alone: the figures are the cost of one event's transaction, not a "
        "throughput under contention (publishers to the same members serialize on their stream rows until "
        "commit). The bench's Postgres runs with fsync, synchronous_commit and full_page_writes off (a "
        "throwaway cluster): no commit waits for a disk flush here, so on a durable server each figure "
        "grows by the flush, and the WAL written per event is what that flush must carry."
    )
    return Section(
        "publishcost", "Publish cost by workspace size", rows, method, limits, extra="\n".join(table)
    )
