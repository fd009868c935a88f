"""The durable side of the bus: a user's stream position and epoch, replay, pruning.

A client that was away resumes with "after N" in epoch E. Ids are only comparable within
one epoch (it changes when the database lineage changes or the stream is reset:
migrations/0002_stream_epoch.sql), and if retention already removed ids above N the replay
would be partial. In both cases the caller gets `ResyncRequired` instead (Centrifugo's
rule) and reloads its state over REST.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from rag_eventbus.queries import PRUNE, SELECT_AFTER, SELECT_STREAM, SELECT_STREAMS
from rag_eventbus.types import DeliveredEvent


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a user's stream stands: its newest id, its oldest retained id, its epoch."""

    last_id: int  # 0 for a stream with no events yet
    oldest_id: int  # last_id + 1 when every event was pruned (or none was published)
    epoch: str  # opaque; ids of two different epochs are unrelated


@dataclass(frozen=True, slots=True)
class Replay:
    """Events read after some id, and the position of the stream they were read from."""

    position: StreamPosition
    events: list[DeliveredEvent]


class ResyncRequired(Exception):
    """The requested history is gone (pruned) or belongs to another epoch: reload state over REST."""

    def __init__(self, position: StreamPosition, reason: str) -> None:
        super().__init__(reason)
        self.position = position

    @property
    def oldest_event_id(self) -> int:
        return self.position.oldest_id

    @property
    def epoch(self) -> str:
        return self.position.epoch


class EventLog:
    """Reads and prunes the event log on a connection the caller owns."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn

    async def stream_position(self, user_id: UUID) -> StreamPosition:
        """The user's stream position and epoch (the stream row is created when missing)."""
        cur = await self._conn.execute(SELECT_STREAM, (user_id,))
        row = await cur.fetchone()
        assert row is not None, "eventbus_stream returns one row"
        return StreamPosition(int(row[0]), int(row[1]), str(row[2]))

    async def stream_positions(self, user_ids: Collection[UUID]) -> dict[UUID, StreamPosition]:
        """Positions of the users that have a stream row, in one query."""
        cur = await self._conn.execute(SELECT_STREAMS, (list(user_ids),))
        return {
            user_id: StreamPosition(int(last_id), int(oldest), str(epoch))
            for user_id, last_id, oldest, epoch in await cur.fetchall()
        }

    async def read_after(
        self,
        user_id: UUID,
        after: int,
        limit: int = 500,
        upto: int | None = None,
        epoch: str | None = None,
    ) -> Replay:
        """Events with `after < id <= upto`, oldest first, at most `limit`.

        Raises ResyncRequired when some of them were pruned, or when `epoch` is given and
        is not the stream's current epoch (the ids the caller holds are of another stream).
        """
        position = await self.stream_position(user_id)
        if epoch is not None and epoch != position.epoch:
            raise ResyncRequired(position, f"epoch {epoch!r} is not the stream's ({position.epoch!r})")
        if after + 1 < position.oldest_id:
            raise ResyncRequired(position, f"events before {position.oldest_id} are no longer retained")
        # Ids are consecutive: the answer is after+1 .. hi, never past the position just read
        # (whose ids are all committed, runs included).
        hi = min(position.last_id, after + limit)
        if upto is not None:
            hi = min(hi, upto)
        if hi <= after:
            return Replay(position, [])
        cur = await self._conn.execute(SELECT_AFTER, {"user_id": user_id, "lo": after + 1, "hi": hi})
        events = [
            DeliveredEvent(id=i, type=t, payload=p, created_at=c, traceparent=tp)
            for i, t, p, c, tp in await cur.fetchall()
        ]
        return Replay(position, events)

    async def prune(self, max_age_seconds: float, max_per_user: int) -> int:
        """Delete events past either limit; return how many stored events went.

        `max_per_user` bounds each user's stream and each audience's (an event is stored once,
        in its audience's stream, however many users it reached)."""
        cur = await self._conn.execute(PRUNE, {"max_age": max_age_seconds, "max_per_user": max_per_user})
        row = await cur.fetchone()
        assert row is not None, "eventbus_prune returns one row"
        return int(row[0])
