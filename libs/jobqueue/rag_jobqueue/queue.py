"""A job table and the SQL that moves its rows through their states.

Every job table has the same shape (see 0001_core.sql): status, attempt,
max_attempts, run_at, locked_by, locked_until, last_error and timestamps.
`attempt` counts claims. `locked_by` + `attempt` form the fencing token: every
update of a running job checks both, so a worker whose lease expired and was
taken over cannot overwrite the new owner's result.

Claims are fair across partitions (a queue's `partition_by` column, the
workspace for every table of ours): see `fair_claim` for the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql


@dataclass(frozen=True, slots=True)
class QueueSpec:
    table: str  # e.g. "parse_jobs"
    channel: str  # NOTIFY channel that wakes the workers, e.g. "parse_jobs"
    name: str  # short name for logs and metrics, e.g. "parse"
    # The column whose values share the workers fairly (a tenant), NOT NULL, with the two
    # indexes of migration 0004 on it; None: plain first-in-first-out claims.
    partition_by: str | None = "workspace_id"


@dataclass(frozen=True, slots=True)
class Job:
    id: UUID
    status: str
    attempt: int
    max_attempts: int
    run_at: datetime
    locked_by: str | None
    last_error: str | None
    row: dict[str, Any] = field(repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(
            id=row["id"],
            status=row["status"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            run_at=row["run_at"],
            locked_by=row["locked_by"],
            last_error=row["last_error"],
            row=row,
        )


_LEASE = "now() + make_interval(secs => %(lease)s)"
_FENCE = "id = %(id)s AND locked_by = %(worker)s AND attempt = %(attempt)s AND status = 'running'"


class QueueSQL:
    """The statements for one table, composed once."""

    def __init__(self, spec: QueueSpec) -> None:
        t = sql.Identifier(spec.table)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(t=t)

        self.claim = fifo_claim(t) if spec.partition_by is None else fair_claim(t, spec.partition_by)
        # Running jobs whose lease expired: the owner died or hung. Taking one over is a new claim.
        self.rescue = q(
            "WITH picked AS ("
            " SELECT id FROM {t} WHERE status = 'running' AND locked_until < now()"
            " ORDER BY locked_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " UPDATE {t} j SET attempt = j.attempt + 1, locked_by = %(worker)s,"
            f" locked_until = {_LEASE}, started_at = now(), updated_at = now()"
            " FROM picked WHERE j.id = picked.id RETURNING j.*"
        )
        self.heartbeat = q(
            f"UPDATE {{t}} SET locked_until = {_LEASE}, updated_at = now()"
            " WHERE id = ANY(%(ids)s) AND locked_by = %(worker)s AND status = 'running'"
            " RETURNING id, attempt"
        )
        self.check_fence = q(f"SELECT 1 FROM {{t}} WHERE {_FENCE} FOR UPDATE")
        self.succeed = q(
            "UPDATE {t} SET status = 'success', finished_at = now(), locked_by = NULL,"
            f" locked_until = NULL, last_error = NULL, updated_at = now() WHERE {_FENCE} RETURNING *"
        )
        self.retry = q(
            "UPDATE {t} SET status = 'queued', run_at = now() + make_interval(secs => %(delay)s),"
            " last_error = %(error)s, locked_by = NULL, locked_until = NULL, updated_at = now()"
            f" WHERE {_FENCE} RETURNING *"
        )
        self.fail = q(
            "UPDATE {t} SET status = 'failed', finished_at = now(), last_error = %(error)s,"
            f" locked_by = NULL, locked_until = NULL, updated_at = now() WHERE {_FENCE} RETURNING *"
        )
        # Shutdown: give the job back without counting the interrupted claim.
        self.release = q(
            "UPDATE {t} SET status = 'queued', attempt = attempt - 1, run_at = now(), locked_by = NULL,"
            f" locked_until = NULL, updated_at = now() WHERE {_FENCE} RETURNING *"
        )
        self.next_due = q(
            "SELECT EXTRACT(EPOCH FROM (min(run_at) - now()))::float8 FROM {t} WHERE status = 'queued'"
        )


_START = (
    " UPDATE {t} j SET status = 'running', attempt = j.attempt + 1, locked_by = %(worker)s,"
    f" locked_until = {_LEASE}, started_at = now(), finished_at = NULL, updated_at = now()"
    " FROM picked WHERE j.id = picked.id RETURNING j.*"
)

# How many due jobs per partition a fair claim considers beyond the `limit` it wants: the
# rows that concurrent claims hold locked are skipped, and these spares take their place.
CLAIM_SPARES_PER_PARTITION = 2


def fifo_claim(t: sql.Identifier) -> sql.Composed:
    """Due queued jobs, oldest first; the partial index on queued rows keeps this cheap."""
    return sql.SQL(
        "WITH picked AS ("
        " SELECT id FROM {t} WHERE status = 'queued' AND run_at <= now()"
        " ORDER BY run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)" + _START
    ).format(t=t)


def fair_claim(t: sql.Identifier, partition: str) -> sql.Composed:
    """The oldest due job of the partition with the fewest running jobs, in one statement.

    The rule, for a claim of `limit` jobs: every partition (workspace) with due queued jobs
    ranks its own jobs 1, 2, ... by (run_at, id). Jobs are taken by rank first (everyone's
    oldest job before anyone's second), then by how many jobs of the partition are running
    now (fewest first), then by age (run_at, id). So a workspace that queued 500 jobs gets
    one job per round like any other, and a workspace with a single job waits for the
    claims already made, not behind the 500.

    How it stays cheap (migration 0004's indexes):
    - `firsts`: a skip scan of the (partition, run_at, id) queued index yields each
      partition's oldest queued job, one index probe per partition that has queued jobs
      (not one per queued job). A partition whose oldest job is not due has none due.
    - `running`: the count per partition from the (partition) running index (small).
    - Rank 1 is every due `firsts` row. Deeper ranks (2 .. limit + spares) are only needed
      when there are fewer partitions than that, so only the first `limit + spares`
      partitions in claim order offer them: the candidates are a superset of the rule's
      first `limit + spares` jobs.
    - `picked` sorts the candidates, then joins the job rows lazily in that order, locking
      with SKIP LOCKED until `limit` are held. Rows a concurrent claim holds are skipped and
      the spares take their place; a claim that still comes back short is retried by the
      worker at once (next_due says a job is due).
    """
    p = sql.Identifier(partition)
    return sql.SQL(
        "WITH RECURSIVE firsts AS ("
        " (SELECT {p} AS part, run_at, id FROM {t} WHERE status = 'queued' ORDER BY {p}, run_at, id LIMIT 1)"
        " UNION ALL"
        " SELECT n.part, n.run_at, n.id FROM firsts f CROSS JOIN LATERAL ("
        " SELECT q.{p} AS part, q.run_at, q.id FROM {t} q WHERE q.status = 'queued' AND q.{p} > f.part"
        " ORDER BY q.{p}, q.run_at, q.id LIMIT 1) n),"
        " running AS (SELECT {p} AS part, count(*) AS n FROM {t} WHERE status = 'running' GROUP BY {p}),"
        " heads AS ("
        " SELECT f.part, f.run_at, f.id, coalesce(r.n, 0) AS running FROM firsts f"
        " LEFT JOIN running r ON r.part = f.part WHERE f.run_at <= now()),"
        " deeper AS ("
        " SELECT h.part, d.run_at, d.id, h.running, 1 + row_number() OVER (PARTITION BY h.part ORDER BY d.run_at, d.id) AS rank"
        " FROM (SELECT * FROM heads ORDER BY running, run_at, id LIMIT %(limit)s + {spares}) h"
        " CROSS JOIN LATERAL (SELECT q.run_at, q.id FROM {t} q"
        " WHERE q.status = 'queued' AND q.{p} = h.part AND q.run_at <= now() AND (q.run_at, q.id) > (h.run_at, h.id)"
        " ORDER BY q.run_at, q.id LIMIT %(limit)s + {spares} - 1) d),"
        " candidates AS ("
        " SELECT id, run_at, running, 1 AS rank FROM heads UNION ALL SELECT id, run_at, running, rank FROM deeper),"
        " picked AS ("
        " SELECT j.id FROM (SELECT * FROM candidates ORDER BY rank, running, run_at, id) c"
        " JOIN {t} j ON j.id = c.id WHERE j.status = 'queued' AND j.run_at <= now()"
        " ORDER BY c.rank, c.running, c.run_at, c.id LIMIT %(limit)s FOR UPDATE OF j SKIP LOCKED)" + _START
    ).format(t=t, p=p, spares=sql.Literal(CLAIM_SPARES_PER_PARTITION))
