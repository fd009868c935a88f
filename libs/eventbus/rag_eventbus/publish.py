"""Publish events inside the caller's transaction.

Every recipient (a member of the event's workspace) gets the event under the next id
of their own stream. The id comes from `UPDATE user_streams ... RETURNING` whose row
lock is held until commit, so a user's ids are consecutive and in commit order and a
rollback leaves no gap (a bigserial gives neither). Users are locked in sorted order
so that two transactions publishing to overlapping users cannot deadlock.

One NOTIFY on `rag_realtime` per call: it carries the numbered events inline when
they fit well below Postgres' 8000-byte limit, otherwise only per-user id ranges
that the api replicas read back from the log. Call `publish` once, as late as
possible in the transaction, with every event of that transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg import AsyncConnection

from rag_schema.events import DeliveredEvent, Event

REALTIME_CHANNEL = "rag_realtime"
NOTIFY_PAYLOAD_LIMIT = 7000  # bytes; Postgres refuses 8000 and more

SELECT_RECIPIENTS = """
SELECT workspace_id, user_id FROM workspace_members WHERE workspace_id = ANY(%(workspaces)s)
"""

# Rows are locked in the order of the sorted input: overlapping publishers queue
# behind each other instead of deadlocking.
ALLOCATE_IDS = """
INSERT INTO user_streams AS s (user_id, last_id)
SELECT u, n FROM unnest(%(users)s::uuid[], %(counts)s::bigint[]) AS t(u, n) ORDER BY u
ON CONFLICT (user_id) DO UPDATE SET last_id = s.last_id + excluded.last_id
RETURNING user_id, last_id
"""

INSERT_EVENTS = """
INSERT INTO events (user_id, id, type, payload)
SELECT * FROM unnest(%(users)s::uuid[], %(ids)s::bigint[], %(types)s::text[], %(payloads)s::jsonb[])
RETURNING created_at
"""

NOTIFY = "SELECT pg_notify(%s, %s)"


@dataclass(frozen=True, slots=True)
class Notice:
    """What one `rag_realtime` notification tells a replica.

    `events` holds (user_id, event) pairs when the events travelled inline;
    `ranges` holds (user_id, first_id, last_id) to read from the log otherwise.
    """

    events: list[tuple[UUID, DeliveredEvent]]
    ranges: list[tuple[UUID, int, int]]


async def publish(conn: AsyncConnection[Any], events: Sequence[Event]) -> dict[UUID, list[int]]:
    """Store `events` for every member of their workspaces; return the ids per user.

    Must run inside a transaction on `conn`; nothing is visible or notified until
    it commits, and nothing at all if it rolls back.
    """
    if not events:
        return {}
    workspaces = sorted({e.workspace_id for e in events})
    cur = await conn.execute(SELECT_RECIPIENTS, {"workspaces": workspaces})
    members: dict[UUID, list[UUID]] = defaultdict(list)
    for workspace_id, user_id in await cur.fetchall():
        members[workspace_id].append(user_id)

    per_user: dict[UUID, list[Event]] = defaultdict(list)
    for event in events:
        for user_id in members.get(event.workspace_id, ()):
            per_user[user_id].append(event)
    if not per_user:
        return {}

    users = sorted(per_user)
    cur = await conn.execute(ALLOCATE_IDS, {"users": users, "counts": [len(per_user[u]) for u in users]})
    last_ids = {user_id: last_id for user_id, last_id in await cur.fetchall()}

    row_users: list[UUID] = []
    row_ids: list[int] = []
    row_types: list[str] = []
    row_payloads: list[str] = []
    allocated: dict[UUID, list[int]] = {}
    for user_id in users:
        mine = per_user[user_id]
        first = last_ids[user_id] - len(mine) + 1
        allocated[user_id] = list(range(first, first + len(mine)))
        for event_id, event in zip(allocated[user_id], mine, strict=True):
            row_users.append(user_id)
            row_ids.append(event_id)
            row_types.append(event.type)
            row_payloads.append(orjson.dumps(event.payload).decode())
    cur = await conn.execute(
        INSERT_EVENTS,
        {"users": row_users, "ids": row_ids, "types": row_types, "payloads": row_payloads},
    )
    created_at: datetime = (await cur.fetchone() or [None])[0]

    for payload in _notice_payloads(per_user, allocated, created_at):
        await conn.execute(NOTIFY, (REALTIME_CHANNEL, payload))
    return allocated


def _notice_payloads(
    per_user: dict[UUID, list[Event]], allocated: dict[UUID, list[int]], created_at: datetime
) -> list[str]:
    """The inline notification if it fits; else id ranges, split to fit."""
    inline = orjson.dumps(
        {
            "c": created_at,
            "e": [
                [str(u), i, e.type, e.payload]
                for u in per_user
                for i, e in zip(allocated[u], per_user[u], strict=True)
            ],
        }
    )
    if len(inline) <= NOTIFY_PAYLOAD_LIMIT:
        return [inline.decode()]
    payloads: list[str] = []
    batch: list[list[Any]] = []
    for user_id, ids in allocated.items():
        batch.append([str(user_id), ids[0], ids[-1]])
        if len(batch) >= 100:  # ~60 bytes each: well under the limit
            payloads.append(orjson.dumps({"r": batch}).decode())
            batch = []
    if batch:
        payloads.append(orjson.dumps({"r": batch}).decode())
    return payloads


def decode_notice(payload: str, wanted: Callable[[UUID], bool] | None = None) -> Notice:
    """Parse a `rag_realtime` payload written by `publish`.

    With `wanted`, only the users for whom it is true are decoded: an api replica gets
    every notification and drops those of users it does not hold, and building their
    events was the largest part of its cost per notification (docs/benchmarks.md, 6).
    """
    body = orjson.loads(payload)
    if "e" in body:
        events: list[tuple[UUID, DeliveredEvent]] = []
        created_at: datetime | None = None
        for u, i, t, p in body["e"]:
            user_id = UUID(u)
            if wanted is not None and not wanted(user_id):
                continue
            if created_at is None:
                created_at = datetime.fromisoformat(body["c"])
            events.append((user_id, DeliveredEvent(id=i, type=t, payload=p, created_at=created_at)))
        return Notice(events=events, ranges=[])
    ranges = [(UUID(u), first, last) for u, first, last in body["r"]]
    if wanted is not None:
        ranges = [r for r in ranges if wanted(r[0])]
    return Notice(events=[], ranges=ranges)
