"""A job table and the SQL that moves its rows through their states.

Every job table has the same shape (see 0001_core.sql): status, attempt,
max_attempts, run_at, locked_by, locked_until, last_error and timestamps.
`attempt` counts claims. `locked_by` + `attempt` form the fencing token: every
update of a running job checks both, so a worker whose lease expired and was
taken over cannot overwrite the new owner's result.
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

        # Due queued jobs, oldest first; the partial index on queued rows keeps this cheap.
        self.claim = q(
            "WITH picked AS ("
            " SELECT id FROM {t} WHERE status = 'queued' AND run_at <= now()"
            " ORDER BY run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " UPDATE {t} j SET status = 'running', attempt = j.attempt + 1, locked_by = %(worker)s,"
            f" locked_until = {_LEASE}, started_at = now(), finished_at = NULL, updated_at = now()"
            " FROM picked WHERE j.id = picked.id RETURNING j.*"
        )
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
