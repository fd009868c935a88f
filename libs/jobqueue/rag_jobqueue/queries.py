"""Every statement the job runtime sends, by name, composed once per job table.

A job table is any table with the job columns (docs/jobs.md, "A job table"). `{t}` is
the table, `{p}` the queue's partition column. `attempt` counts claims; `locked_by` +
`attempt` form the fencing token: every update of a running job checks both
(`{fence}`), so a worker whose lease expired and was taken over cannot overwrite the
new owner's result.

A claim is one statement (`claim_statement`): it picks the rows, starts them and runs the
kind's claim effects (effects.py) over `started`, the rows it started, in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql

from rag_eventbus import publish_within
from rag_jobqueue.effects import NO_EFFECTS, ClaimEffects
from rag_jobqueue.queue import Job, QueueSpec

# How many due jobs per partition a fair claim considers beyond the `limit` it wants: the
# rows that concurrent claims hold locked are skipped, and these spares take their place.
CLAIM_SPARES_PER_PARTITION = 2

LEASE = sql.SQL("now() + make_interval(secs => %(lease)s)")
FENCE = sql.SQL("id = %(id)s AND locked_by = %(worker)s AND attempt = %(attempt)s AND status = 'running'")

# The tail of every new claim: start the `picked` rows as a new attempt under this worker's lease.
START = """
UPDATE {t} j SET status = 'running', attempt = j.attempt + 1, locked_by = %(worker)s,
    locked_until = {lease}, started_at = now(), finished_at = NULL, updated_at = now()
FROM picked WHERE j.id = picked.id RETURNING j.*
"""

# Every claim: `{pick}` (a WITH that ends in `picked`) chooses the rows, `{start}` starts
# them as `started`, `{effects}` are the kind's. It returns one row per started job, or a
# single row of NULLs when none was, so that `claim_next_due` always comes back: for a new
# claim that came back short, the seconds until the next queued job is due (NULL: none
# queued, or not short). `claim_published` reads the publish (see publish_within).
CLAIM = """
{pick},
started AS ({start}){effects}
SELECT {due} AS claim_next_due, {published} AS claim_published, s.*
FROM (SELECT) AS one LEFT JOIN started s ON true
"""
CLAIM_COLUMNS = ("claim_next_due", "claim_published")
CLAIM_UPDATE = ",\nclaim_update AS ({update} RETURNING 1)"
CLAIM_EVENTS = ",\nclaim_events AS ({events}),\npublished AS ({publish})"
# Locks in the order of the transaction this statement replaced: the job rows (`started`), the
# domain rows, then the bus's streams. A data-modifying WITH nobody reads runs after the main
# query, so after the publish; reading it inside the publish's argument makes it run first. A
# transaction that locks a document and then publishes (the api's) then never waits on a claim
# that holds the streams while it waits on that document: no deadlock.
AFTER_UPDATE = ", (SELECT count(*) FROM claim_update) AS updated"
# The events in (job, n) order, as the jsonb array `publish` takes.
EVENTS_ARRAY = (
    "(SELECT coalesce(jsonb_agg(c.event ORDER BY c.job_id, c.n), '[]'::jsonb) FROM claim_events c{after})"
)
# The trace context every started job was queued in, if they share one (one upload's files do).
COMMON_TRACEPARENT = """(SELECT CASE WHEN count(DISTINCT coalesce(traceparent, '')) = 1
    THEN min(traceparent) END FROM started)"""
PUBLISHED = "CASE WHEN EXISTS (SELECT FROM started) THEN (SELECT users FROM published) END"
# The queued rows of this statement's snapshot still include those it started: left out.
NEXT_DUE = """CASE WHEN (SELECT count(*) FROM started) < %(limit)s THEN (
    SELECT EXTRACT(EPOCH FROM (min(q.run_at) - now()))::float8 FROM {t} q
    WHERE q.status = 'queued' AND q.id NOT IN (SELECT id FROM started)) END"""

# Due queued jobs, oldest first; the partial index on queued rows keeps this cheap.
FIFO_CLAIM = """
WITH picked AS (
    SELECT id FROM {t} WHERE status = 'queued' AND run_at <= now()
    ORDER BY run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)"""

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
FAIR_CLAIM = """
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

# Running jobs whose lease expired: the owner died or hung. Taking one over is a new claim,
# with the next attempt. `{exhausted}` splits them: those with attempts left are started by
# a claim (RESCUE_LIVE_PICK, with the kind's claim effects), those without are failed by the
# worker (RESCUE_EXHAUSTED: its owners kept dying on this input).
RESCUE_PICK = """
WITH picked AS (
    SELECT id FROM {t} WHERE status = 'running' AND locked_until < now() AND {exhausted}
    ORDER BY locked_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)"""
RESCUE_START = """
UPDATE {t} j SET attempt = j.attempt + 1, locked_by = %(worker)s,
    locked_until = {lease}, started_at = now(), updated_at = now()
FROM picked WHERE j.id = picked.id RETURNING j.*
"""
RESCUE_LIVE_PICK = RESCUE_PICK.replace("{exhausted}", "attempt < max_attempts")
RESCUE_EXHAUSTED = RESCUE_PICK.replace("{exhausted}", "attempt >= max_attempts") + RESCUE_START

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


def claim_statement(spec: QueueSpec, effects: ClaimEffects, *, rescue: bool = False) -> sql.Composed:
    """The claim of `spec`'s queue with `effects`: a new claim (FIFO or fair, by the spec), or
    with `rescue` the takeover of expired leases that have attempts left (no next-due)."""

    def q(template: str) -> sql.Composed:
        return compose(template, spec.table, spec.partition_by)

    more: list[sql.Composable] = []
    if effects.update is not None:
        more.append(sql.SQL(CLAIM_UPDATE).format(update=effects.update))
    published: sql.Composable = sql.SQL("NULL::bigint")
    if effects.events is not None:
        traceparent = sql.SQL(COMMON_TRACEPARENT if spec.traced else "NULL::text")
        after = sql.SQL(AFTER_UPDATE if effects.update is not None else "")
        publish = publish_within(sql.SQL(EVENTS_ARRAY).format(after=after), traceparent)
        more.append(sql.SQL(CLAIM_EVENTS).format(events=effects.events, publish=publish))
        published = sql.SQL(PUBLISHED)
    due: sql.Composable = sql.SQL("NULL::float8")
    if rescue:
        pick, start = q(RESCUE_LIVE_PICK), q(RESCUE_START)
    else:
        pick, start, due = q(FIFO_CLAIM if spec.partition_by is None else FAIR_CLAIM), q(START), q(NEXT_DUE)
    return sql.SQL(CLAIM).format(
        pick=pick, start=start, effects=sql.Composed(more), due=due, published=published
    )


def claimed(rows: Sequence[Mapping[str, Any]]) -> tuple[list[Job], float | None]:
    """A claim's answer (CLAIM, read with a dict row factory): the jobs it started, and the
    seconds until the next queued job is due (None: none queued, or the claim was full)."""
    jobs = [
        Job.from_row({k: v for k, v in row.items() if k not in CLAIM_COLUMNS})
        for row in rows
        if row["id"] is not None
    ]
    return jobs, rows[0]["claim_next_due"] if rows else None


def insert(table: str, values: Mapping[str, object]) -> sql.Composed:
    """INSERT of one job row with the columns of `values`, as named placeholders."""
    return sql.SQL(INSERT).format(
        t=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, values)),
        values=sql.SQL(", ").join(map(sql.Placeholder, values)),
    )


class QueueSQL:
    """The statements for one queue's table, composed and rendered once.

    Rendered to bytes here because psycopg renders a `sql.Composed` again on every execute
    (the claim with its effects: ~35 µs of the worker's CPU per claim, measured); the text
    is the same every time, so the server-side prepared statement is too.
    """

    def __init__(self, spec: QueueSpec, effects: ClaimEffects = NO_EFFECTS) -> None:
        def q(template: str) -> bytes:
            return compose(template, spec.table, spec.partition_by).as_bytes()

        self.claim = claim_statement(spec, effects).as_bytes()
        self.rescue = claim_statement(spec, effects, rescue=True).as_bytes()
        self.rescue_exhausted = q(RESCUE_EXHAUSTED)
        self.heartbeat = q(HEARTBEAT)
        self.check_fence = q(CHECK_FENCE)
        self.succeed = q(SUCCEED)
        self.retry = q(RETRY)
        self.fail = q(FAIL)
        self.release = q(RELEASE)
        self.depth = q(DEPTH)
