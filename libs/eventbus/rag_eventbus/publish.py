"""Publish events inside the caller's transaction.

Each event is stored once, under the next seq of its audience's stream, and every
recipient of the audience (the users the application's `eventbus_recipients` view names
for it) gets it under the next id of their own stream. The id comes from the user's
`user_streams` row, whose lock is held until commit, so a user's ids are consecutive and
in commit order and a rollback leaves no gap (a bigserial gives neither). Audiences, then
users, are locked in sorted order so that two transactions publishing to overlapping
users cannot deadlock. A user's ids map onto audience events by runs (a row only when the
user's events switch audience), so an event of a workspace of n members costs n small row
updates rather than n copies (migrations/0004_audience_streams.sql).

One NOTIFY on `rag_realtime` per call: it carries the numbered events inline when
they fit well below Postgres' 8000-byte limit, otherwise only per-user id ranges
that the api replicas read back from the log. Call `publish` once, as late as
possible in the transaction, with every event of that transaction.

All of it runs in Postgres (`eventbus_publish`, migrations/0004_audience_streams.sql): one
round trip, which matters because the job runtime publishes inside every claim.

Trace context: the events of one call are stored with one W3C traceparent, the caller's
(`traceparent=`) or else the current OpenTelemetry span's; it travels in the notification
("t") and the log, never in the frames (docs/observability.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from psycopg import AsyncConnection, sql

from rag_eventbus.queries import PUBLISH, PUBLISH_WITHIN
from rag_eventbus.types import DeliveredEvent, Publishable

REALTIME_CHANNEL = "rag_realtime"
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True, slots=True)
class Notice:
    """What one `rag_realtime` notification tells a replica.

    `events` holds (user_id, event) pairs when the events travelled inline;
    `ranges` holds (user_id, first_id, last_id) to read from the log otherwise.
    """

    events: list[tuple[UUID, DeliveredEvent]]
    ranges: list[tuple[UUID, int, int]]


def _current_traceparent() -> str | None:
    """The current span's W3C traceparent; None outside a valid span (always, with tracing off).

    rag_observability.tracing has the same few lines; the bus sits beside it, not above it."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


async def publish(
    conn: AsyncConnection[Any], events: Sequence[Publishable], *, traceparent: str | None = None
) -> None:
    """Store `events` for every recipient of their audiences, in the caller's transaction.

    Must run inside a transaction on `conn`; nothing is visible or notified until
    it commits, and nothing at all if it rolls back. `traceparent` is the trace the events
    belong to when it is not the current span's (a claim publishes outside its jobs' spans).

    It never reads the statement's result, so in psycopg's pipeline mode
    (`conn.pipeline()`) the publish travels with the statements around it and the COMMIT,
    costing no round trip of its own; an error surfaces at the next sync, which aborts
    the transaction all the same. `publish_and_number` also returns the ids.
    """
    if events:
        await conn.execute(PUBLISH, _publish_args(events, traceparent))


async def publish_and_number(
    conn: AsyncConnection[Any], events: Sequence[Publishable], *, traceparent: str | None = None
) -> dict[UUID, list[int]]:
    """`publish`, then wait for the ids each user's events got (tests, benchmarks)."""
    if not events:
        return {}
    cur = await conn.execute(PUBLISH, _publish_args(events, traceparent))
    return {user_id: list(range(first, last + 1)) for user_id, first, last in await cur.fetchall()}


def publish_within(events: sql.Composable, traceparent: sql.Composable) -> sql.Composed:
    """A query that publishes as `publish` does, for a caller that makes it part of one
    statement of its own (a CTE) to save the round trip: the job runtime's claim starts its
    jobs and publishes their events in one statement (rag_jobqueue.effects).

    `events` is an SQL expression of the jsonb array `publish` would send (objects with
    `type`, `audience` and `payload`), `traceparent` one of text (NULL for none). The query
    returns one row, the number of users the events went to; the caller must read it, or
    Postgres, which runs a SELECT in a WITH only as far as it is read, publishes nothing.
    """
    return sql.SQL(PUBLISH_WITHIN).format(events=events, traceparent=traceparent)


def _publish_args(events: Sequence[Publishable], traceparent: str | None) -> tuple[str, str | None]:
    body = orjson.dumps(
        [{"type": e.type, "audience": e.audience, "payload": e.payload} for e in events]
    ).decode()
    return body, traceparent or _current_traceparent()


def decode_notice(payload: str | bytes, wanted: Callable[[UUID], bool] | None = None) -> Notice:
    """Parse a `rag_realtime` payload written by `publish` (or its part one user's Redis
    channel carries, `redis_wire.split_notice`).

    With `wanted`, only the users for whom it is true are decoded: an api replica gets
    every notification and drops those of users it does not hold, and building their
    events was the largest part of its cost per notification (docs/benchmarks.md, 6).
    """
    body = orjson.loads(payload)
    if "e" in body:
        events: list[tuple[UUID, DeliveredEvent]] = []
        created_at: datetime | None = None
        traceparent: str | None = body.get("t")
        for u, i, t, p in body["e"]:
            user_id = UUID(u)
            if wanted is not None and not wanted(user_id):
                continue
            if created_at is None:
                created_at = datetime.fromisoformat(body["c"])
            events.append(
                (
                    user_id,
                    DeliveredEvent(id=i, type=t, payload=p, created_at=created_at, traceparent=traceparent),
                )
            )
        return Notice(events=events, ranges=[])
    ranges = [(UUID(u), first, last) for u, first, last in body["r"]]
    if wanted is not None:
        ranges = [r for r in ranges if wanted(r[0])]
    return Notice(events=[], ranges=ranges)
