"""Every statement the job runtime sends, by name, composed once per job table.

A job table is any table with the job columns (docs/jobs.md, "A job table"). `{t}` is
the table, `{p}` the queue's partition column. `attempt` counts claims; `locked_by` +
`attempt` form the fencing token: every update of a running job checks both
(`{fence}`), so a worker whose lease expired and was taken over cannot overwrite the
new owner's result.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from rag_jobqueue.queue import QueueSpec

# How many due jobs per partition a fair claim considers beyond the `limit` it wants: the
# rows that concurrent claims hold locked are skipped, and these spares take their place.
CLAIM_SPARES_PER_PARTITION = 2

LEASE = sql.SQL("now() + make_interval(secs => %(lease)s)")
FENCE = sql.SQL("id = %(id)s AND locked_by = %(worker)s AND attempt = %(attempt)s AND status = 'running'")

# The tail of every claim: start the `picked` rows as a new attempt under this worker's lease.
START = """
UPDATE {t} j SET status = 'running', attempt = j.attempt + 1, locked_by = %(worker)s,
    locked_until = {lease}, started_at = now(), finished_at = NULL, updated_at = now()
FROM picked WHERE j.id = picked.id RETURNING j.*
"""

# Due queued jobs, oldest first; the partial index on queued rows keeps this cheap.
FIFO_CLAIM = (
    """
WITH picked AS (
    SELECT id FROM {t} WHERE status = 'queued' AND run_at <= now()
    ORDER BY run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)"""
    + START
)

# The oldest due job of the partition with the fewest running jobs, in one statement.
#
# The rule, for a claim of `limit` jobs: every partition (workspace) with due queued jobs
# ranks its own jobs 1, 2, ... by (run_at, id). Jobs are taken by rank first (everyone's
# oldest job before anyone's second), then by how many jobs of the partition are running
# now (fewest first), then by age (run_at, id). So a workspace that queued 500 jobs gets
# one job per round like any other, and a workspace with a single job waits for the
# claims already made, not behind the 500.
#
# How it stays cheap (the two partition indexes of docs/jobs.md, "A job table"):
# - `firsts`: a skip scan of the (partition, run_at, id) queued index yields each
#   partition's oldest queued job, one index probe per partition that has queued jobs
#   (not one per queued job). A partition whose oldest job is not due has none due.
# - `running`: the count per partition from the (partition) running index (small).
# - Rank 1 is every due `firsts` row. Deeper ranks (2 .. limit + spares) are only needed
#   when there are fewer partitions than that, so only the first `limit + spares`
#   partitions in claim order offer them: the candidates are a superset of the rule's
#   first `limit + spares` jobs.
# - `picked` sorts the candidates, then joins the job rows lazily in that order, locking
#   with SKIP LOCKED until `limit` are held. Rows a concurrent claim holds are skipped and
#   the spares take their place; a claim that still comes back short is retried by the
#   worker at once (next_due says a job is due).
FAIR_CLAIM = (
    """
WITH RECURSIVE firsts AS (
    (SELECT {p} AS part, run_at, id FROM {t} WHERE status = 'queued' ORDER BY {p}, run_at, id LIMIT 1)
    UNION ALL
    SELECT n.part, n.run_at, n.id FROM firsts f CROSS JOIN LATERAL (
        SELECT q.{p} AS part, q.run_at, q.id FROM {t} q WHERE q.status = 'queued' AND q.{p} > f.part
        ORDER BY q.{p}, q.run_at, q.id LIMIT 1) n
),
running AS (SELECT {p} AS part, count(*) AS n FROM {t} WHERE status = 'running' GROUP BY {p}),
heads AS (
    SELECT f.part, f.run_at, f.id, coalesce(r.n, 0) AS running FROM firsts f
    LEFT JOIN running r ON r.part = f.part WHERE f.run_at <= now()
),
deeper AS (
    SELECT h.part, d.run_at, d.id, h.running,
           1 + row_number() OVER (PARTITION BY h.part ORDER BY d.run_at, d.id) AS rank
    FROM (SELECT * FROM heads ORDER BY running, run_at, id LIMIT %(limit)s + {spares}) h
    CROSS JOIN LATERAL (
        SELECT q.run_at, q.id FROM {t} q
        WHERE q.status = 'queued' AND q.{p} = h.part AND q.run_at <= now() AND (q.run_at, q.id) > (h.run_at, h.id)
        ORDER BY q.run_at, q.id LIMIT %(limit)s + {spares} - 1) d
),
candidates AS (
    SELECT id, run_at, running, 1 AS rank FROM heads UNION ALL SELECT id, run_at, running, rank FROM deeper
),
picked AS (
    SELECT j.id FROM (SELECT * FROM candidates ORDER BY rank, running, run_at, id) c
    JOIN {t} j ON j.id = c.id WHERE j.status = 'queued' AND j.run_at <= now()
    ORDER BY c.rank, c.running, c.run_at, c.id LIMIT %(limit)s FOR UPDATE OF j SKIP LOCKED
)"""
    + START
)

# Running jobs whose lease expired: the owner died or hung. Taking one over is a new claim.
RESCUE = """
WITH picked AS (
    SELECT id FROM {t} WHERE status = 'running' AND locked_until < now()
    ORDER BY locked_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE {t} j SET attempt = j.attempt + 1, locked_by = %(worker)s,
    locked_until = {lease}, started_at = now(), updated_at = now()
FROM picked WHERE j.id = picked.id RETURNING j.*
"""

HEARTBEAT = """
UPDATE {t} SET locked_until = {lease}, updated_at = now()
WHERE id = ANY(%(ids)s) AND locked_by = %(worker)s AND status = 'running'
RETURNING id, attempt
"""

CHECK_FENCE = "SELECT 1 FROM {t} WHERE {fence} FOR UPDATE"

SUCCEED = """
UPDATE {t} SET status = 'success', finished_at = now(), locked_by = NULL,
    locked_until = NULL, last_error = NULL, updated_at = now()
WHERE {fence} RETURNING *
"""

RETRY = """
UPDATE {t} SET status = 'queued', run_at = now() + make_interval(secs => %(delay)s),
    last_error = %(error)s, locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE {fence} RETURNING *
"""

FAIL = """
UPDATE {t} SET status = 'failed', finished_at = now(), last_error = %(error)s,
    locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE {fence} RETURNING *
"""

# Shutdown: give the job back without counting the interrupted claim.
RELEASE = """
UPDATE {t} SET status = 'queued', attempt = attempt - 1, run_at = now(), locked_by = NULL,
    locked_until = NULL, updated_at = now()
WHERE {fence} RETURNING *
"""

# Seconds until the earliest queued job is due (NULL: none queued).
NEXT_DUE = "SELECT EXTRACT(EPOCH FROM (min(run_at) - now()))::float8 FROM {t} WHERE status = 'queued'"

# What an operator scales and alerts on (depth.py): queued jobs that are due, queued jobs
# waiting for a later run_at (retries in backoff), running jobs, and the age of the oldest due
# job. The queued ones come from the partial index on (run_at, id) WHERE status = 'queued'.
DEPTH = """
SELECT count(*) FILTER (WHERE run_at <= now()),
       count(*) FILTER (WHERE run_at > now()),
       coalesce(EXTRACT(EPOCH FROM (now() - min(run_at) FILTER (WHERE run_at <= now()))), 0)::float8,
       (SELECT count(*) FROM {t} WHERE status = 'running')
FROM {t} WHERE status = 'queued'
"""

# One job with the producer's columns; the job columns take their defaults.
INSERT = "INSERT INTO {t} ({columns}) VALUES ({values}) RETURNING *"


def compose(template: str, table: str, partition: str | None = None) -> sql.Composed:
    """`template` for one job table (and partition column)."""
    parts: dict[str, sql.Composable] = {
        "t": sql.Identifier(table),
        "lease": LEASE,
        "fence": FENCE,
        "spares": sql.Literal(CLAIM_SPARES_PER_PARTITION),
    }
    if partition is not None:
        parts["p"] = sql.Identifier(partition)
    return sql.SQL(template).format(**parts)


def insert(table: str, values: Mapping[str, object]) -> sql.Composed:
    """INSERT of one job row with the columns of `values`, as named placeholders."""
    return sql.SQL(INSERT).format(
        t=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, values)),
        values=sql.SQL(", ").join(map(sql.Placeholder, values)),
    )


class QueueSQL:
    """The statements for one queue's table, composed once."""

    def __init__(self, spec: QueueSpec) -> None:
        def q(template: str) -> sql.Composed:
            return compose(template, spec.table, spec.partition_by)

        self.claim = q(FIFO_CLAIM if spec.partition_by is None else FAIR_CLAIM)
        self.rescue = q(RESCUE)
        self.heartbeat = q(HEARTBEAT)
        self.check_fence = q(CHECK_FENCE)
        self.succeed = q(SUCCEED)
        self.retry = q(RETRY)
        self.fail = q(FAIL)
        self.release = q(RELEASE)
        self.next_due = q(NEXT_DUE)
        self.depth = q(DEPTH)
