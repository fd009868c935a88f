"""The durable side of the bus: read a user's events back, and prune old ones.

A client that was away resumes with "after N". If retention already removed ids
above N the replay would be partial, so the caller gets `ResyncRequired` instead
(Centrifugo's rule) and reloads its state over REST.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from rag_eventbus.queries import PRUNE, SELECT_AFTER, SELECT_STREAM
from rag_eventbus.types import DeliveredEvent


class ResyncRequired(Exception):
    """Events after the requested id were pruned: reload state over REST."""

    def __init__(self, oldest_event_id: int) -> None:
        super().__init__(f"events before {oldest_event_id} are no longer retained")
        self.oldest_event_id = oldest_event_id


class EventLog:
    """Reads and prunes the event log on a connection the caller owns."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn

    async def stream_position(self, user_id: UUID) -> tuple[int, int]:
        """(last_id, oldest retained id) of the user's stream; (0, 1) when it is empty."""
        cur = await self._conn.execute(SELECT_STREAM, (user_id,))
        row = await cur.fetchone()
        if row is None:
            return 0, 1
        return int(row[0]), int(row[1]) + 1

    async def last_event_id(self, user_id: UUID) -> int:
        return (await self.stream_position(user_id))[0]

    async def read_after(
        self, user_id: UUID, after: int, limit: int = 500, upto: int | None = None
    ) -> list[DeliveredEvent]:
        """Events with `after < id <= upto`, oldest first, at most `limit`.

        Raises ResyncRequired when some of them were pruned.
        """
        _, oldest = await self.stream_position(user_id)
        if after + 1 < oldest:
            raise ResyncRequired(oldest)
        cur = await self._conn.execute(
            SELECT_AFTER, {"user_id": user_id, "after": after, "upto": upto, "limit": limit}
        )
        return [DeliveredEvent(id=i, type=t, payload=p, created_at=c) for i, t, p, c in await cur.fetchall()]

    async def prune(self, max_age_seconds: float, max_per_user: int) -> int:
        """Delete events past either limit; return how many rows went."""
        cur = await self._conn.execute(PRUNE, {"max_age": max_age_seconds, "max_per_user": max_per_user})
        return cur.rowcount
