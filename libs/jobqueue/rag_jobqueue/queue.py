"""A queue (its job table, channel and partition column) and one job row of it.

A job table is any table with the job columns (docs/jobs.md, "A job table"): status,
attempt, max_attempts, run_at, locked_by, locked_until, last_error and timestamps,
plus whatever columns its producers add. The SQL that moves the rows through their
states is `queries`.

Claims are fair across partitions (a queue's `partition_by` column): see
`queries.FAIR_CLAIM` for the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class QueueSpec:
    table: str  # e.g. "parse_jobs"
    channel: str  # NOTIFY channel that wakes the workers, e.g. "parse_jobs"
    name: str  # short name for logs and metrics, e.g. "parse"
    # The column whose values share the workers fairly (a tenant, e.g. "workspace_id"),
    # NOT NULL, with the two partition indexes of docs/jobs.md on it; None: plain
    # first-in-first-out claims.
    partition_by: str | None
    # The table has a nullable `traceparent text` column: `enqueue` stores the producer's
    # trace context there and the worker's span for the job continues it (docs/jobs.md).
    traced: bool = False


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
