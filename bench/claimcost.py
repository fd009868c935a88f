"""Claim cost: one claim statement on a long, lopsided queue, FIFO (before) vs fair (after).

The queue: QUEUED jobs over WORKSPACES workspaces, one of which holds HEAVY of them (a
tenant's big upload), a few of its jobs running. Each statement runs in a transaction
that is rolled back, so every sample sees the same queue. Figures: the server's
execution time from EXPLAIN ANALYZE and the client's round trip, medians over SAMPLES.
`python -m bench claimcost` (the embedded Postgres is started by the bench).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from bench.common import Bench, Row, Section, median
from rag_core.queues import PARSE_QUEUE
from rag_jobqueue.queries import QueueSQL, claimed

WORKSPACES = 1_000
QUEUED = 100_000
HEAVY = 50_000
RUNNING_IN_HEAVY = 4
SAMPLES = 30
FEW = 10  # workspaces of the second queue (a tenth of the jobs)
INDEXES_0004 = ("parse_jobs_queued_workspace_idx", "parse_jobs_running_workspace_idx")
FINISHED = (100_000, 1_000_000)  # finished jobs in the table, on top of the few-workspaces queue
FINISHED_BATCH = 100_000

# The 100,000-job backlog the claims are timed on, in a few set-based statements: its insertion
# is not what is measured, and `enqueue` (the producers' path) would take minutes here.
FILL = """
INSERT INTO workspaces (id, name, created_by)
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(w), 12, '0'))::uuid, 'w' || w, gen_random_uuid()
FROM generate_series(1, %(workspaces)s) w;

-- Job i belongs to workspace 1 (the heavy one) for i <= heavy, else spreads over the rest.
INSERT INTO documents (id, workspace_id, filename, content_type, size_bytes, sha256)
SELECT ('00000000-0000-0000-0001-' || lpad(to_hex(i), 12, '0'))::uuid,
       ('00000000-0000-0000-0000-' || lpad(to_hex(
            CASE WHEN i <= %(heavy)s THEN 1 ELSE 2 + (i %% (%(workspaces)s - 1)) END), 12, '0'))::uuid,
       'f.txt', 'text/plain', 1, encode(sha256(i::text::bytea), 'hex')
FROM generate_series(1, %(queued)s) i;

INSERT INTO parse_jobs (document_id, workspace_id, run_at, created_at)
SELECT id, workspace_id, now() - interval '1 hour' + (row_number() OVER (ORDER BY id)) * interval '1 ms', now()
FROM documents;

UPDATE parse_jobs SET status = 'running', locked_by = 'other', locked_until = now() + interval '1 hour'
WHERE id IN (SELECT id FROM parse_jobs WHERE workspace_id = '00000000-0000-0000-0000-000000000001'
             ORDER BY run_at LIMIT %(running)s);
"""


# `n` finished (success) jobs with their documents, the history a queue accumulates: jobs are
# never deleted (their documents' rows keep them), so a year of uploads is millions of rows.
FILL_FINISHED = """
WITH d AS (
    INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)
    SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(2 + g %% %(workspaces)s), 12, '0'))::uuid,
           'old.txt', 'text/plain', 1, md5('finished' || g) || md5(g::text)
    FROM generate_series(%(first)s::int, %(last)s::int) g RETURNING id, workspace_id
)
INSERT INTO parse_jobs (document_id, workspace_id, status, attempt, run_at, created_at, started_at, finished_at)
SELECT id, workspace_id, 'success', 1, now() - interval '2 days', now() - interval '2 days',
       now() - interval '2 days', now() - interval '2 days'
FROM d
"""


def add_finished(dsn: str, first: int, last: int, workspaces: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(first, last + 1, FINISHED_BATCH):
            end = min(last, start + FINISHED_BATCH - 1)
            conn.execute(FILL_FINISHED, {"first": start, "last": end, "workspaces": workspaces - 1})
        conn.execute("VACUUM ANALYZE parse_jobs")
        conn.execute("ANALYZE documents")


def fill(dsn: str, *, workspaces: int, queued: int, heavy: int, running: int) -> None:
    params = {"workspaces": workspaces, "queued": queued, "heavy": heavy, "running": running}
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            for statement in FILL.split(";\n"):
                if statement.strip():
                    conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE parse_jobs")
        conn.execute("ANALYZE documents")


def measure(
    dsn: str, statement: Any, limit: int, samples: int, *, drop: tuple[str, ...] = (), warmup: int = 1
) -> dict[str, Any]:
    """Server (EXPLAIN ANALYZE) and client milliseconds of `statement`, each run rolled back."""
    params = {"limit": limit, "worker": "bench", "lease": 30}
    server: list[float] = []
    client: list[float] = []
    picked: list[str] = []
    with psycopg.connect(dsn) as conn:
        for i in range(samples + warmup):
            with conn.transaction(force_rollback=True):
                for index in drop:
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
                explain = b"EXPLAIN (ANALYZE, BUFFERS) " + statement
                plan = "\n".join(r[0] for r in conn.execute(explain, params).fetchall())
            with conn.transaction(force_rollback=True):
                for index in drop:
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
                t0 = time.perf_counter()
                with conn.cursor(row_factory=dict_row) as cur:
                    jobs, _ = claimed(cur.execute(statement, params).fetchall())
                elapsed = (time.perf_counter() - t0) * 1000
            if i < warmup:
                continue
            found = re.search(r"Execution Time: ([0-9.]+) ms", plan)
            server.append(float(found.group(1)) if found else float("nan"))
            client.append(elapsed)
            picked = sorted(
                {
                    str(r[0])
                    for r in conn.execute(
                        "SELECT workspace_id FROM parse_jobs WHERE id = ANY(%s)", ([job.id for job in jobs],)
                    )
                }
            )
    return {"server_ms": median(server), "client_ms": median(client), "plan": plan, "workspaces": picked}


def whose(workspaces: list[str], heavy_id: str) -> str:
    if workspaces == [heavy_id]:
        return "the heavy one"
    return (
        f"{len(workspaces)} other(s)"
        if heavy_id not in workspaces
        else f"{len(workspaces)} incl. the heavy one"
    )


async def run(bench: Bench) -> Section:
    scale = 10 if bench.quick else 1
    workspaces, queued, heavy = WORKSPACES // scale, QUEUED // scale, HEAVY // scale
    samples = 5 if bench.quick else SAMPLES
    # The claim statements alone, without a kind's effects (no documents to update).
    fair = QueueSQL(PARSE_QUEUE).claim
    fifo = QueueSQL(dataclasses.replace(PARSE_QUEUE, partition_by=None)).claim
    results: dict[str, dict[str, Any]] = {}
    dsn = bench.database("claimcost")
    try:
        fill(dsn, workspaces=workspaces, queued=queued, heavy=heavy, running=RUNNING_IN_HEAVY)
        results |= {
            "FIFO (before), limit 1": measure(dsn, fifo, 1, samples),
            "FIFO (before), limit 8": measure(dsn, fifo, 8, samples),
            "fair, limit 1": measure(dsn, fair, 1, samples),
            "fair, limit 8": measure(dsn, fair, 8, samples),
            # One run: without the skip-scan index every step of the walk reads the queue.
            "fair without 0004's indexes, limit 1": measure(dsn, fair, 1, 1, drop=INDEXES_0004, warmup=0),
        }
    finally:
        bench.drop_database(dsn)
    # The common case: a handful of tenants. What is left is mostly the planning of the statement.
    dsn = bench.database("claimcost_few")
    try:
        fill(dsn, workspaces=FEW, queued=queued // 10, heavy=heavy // 10, running=RUNNING_IN_HEAVY)
        results |= {
            f"{FEW} workspaces: FIFO, limit 1": measure(dsn, fifo, 1, samples),
            f"{FEW} workspaces: fair, limit 1": measure(dsn, fair, 1, samples),
        }
        # The same queue with a growing history of finished jobs: the claim must not notice.
        done = 0
        for finished in (n // scale for n in FINISHED):
            add_finished(dsn, done + 1, finished, FEW)
            done = finished
            results |= {
                f"{FEW} workspaces + {finished:,} finished jobs: FIFO, limit 1": measure(
                    dsn, fifo, 1, samples
                ),
                f"{FEW} workspaces + {finished:,} finished jobs: fair, limit 1": measure(
                    dsn, fair, 1, samples
                ),
            }
    finally:
        bench.drop_database(dsn)
    rows = []
    for name, result in results.items():
        rows.append(Row("claimcost", f"{name}: server", result["server_ms"], "ms"))
        rows.append(Row("claimcost", f"{name}: round trip", result["client_ms"], "ms"))
    fair_plan = results["fair, limit 1"]["plan"]
    heavy_id = "00000000-0000-0000-0000-000000000001"
    lines = [
        "| claim | server (EXPLAIN ANALYZE) | round trip | workspaces of the claimed jobs |",
        "|---|---|---|---|",
        *(
            f"| {name} | {r['server_ms']:.2f} ms | {r['client_ms']:.2f} ms | {whose(r['workspaces'], heavy_id)} |"
            for name, r in results.items()
        ),
        "",
        "Plan of the fair claim, limit 1:",
        "",
        "```",
        fair_plan,
        "```",
    ]
    method = (
        f"{queued:,} queued parse jobs over {workspaces:,} workspaces, {heavy:,} of them in one workspace"
        f" that also has {RUNNING_IN_HEAVY} running; then {queued // 10:,} jobs over {FEW} workspaces"
        f" (the common case), then the same queue with {FINISHED[0] // scale:,} and {FINISHED[1] // scale:,}"
        " finished jobs (and their documents) in the table. Each claim statement run {samples} times in a rolled-back transaction"
        " (the queue is the same for every sample); medians. Server: EXPLAIN ANALYZE's execution time;"
        " round trip: the client's, planning included."
    )
    limits = (
        "The fair claim makes one index probe per workspace with queued jobs (the skip scan of"
        " migration 0004's index): its cost grows with the number of such workspaces, not with the"
        " queue's length; with a handful of workspaces what it adds is mostly planning. Finished jobs"
        " sit outside both partial indexes (queued, running) that the claims read, so their number does"
        " not enter the claim's cost; the table and its other indexes grow with them."
    )
    return Section("claimcost", "Claim cost (fair claims)", rows, method, limits, extra="\n".join(lines))
