"""What a user may still see of the events in their stream: membership is live.

A user's stream keeps the events of every workspace they were ever a member of. After a
removal they must get nothing more of that workspace, and a replay (WebSocket resume,
`GET /api/events`) of its older events must not show their content, while ids stay
consecutive: such an event is sent as `{"id","type":"event.redacted","payload":
{"workspace_id"},"created_at"}`.

`Redaction` decides this for one reader of the stream (one connection, one REST request)
with no I/O per event. It starts from the user's memberships read at stream position
`as_of`, and from there follows the stream itself:

- an event with id <= `as_of` (a replay) is judged by those memberships, i.e. by what the
  user belongs to now: the membership changes inside the replayed range are already in them;
- an event with id > `as_of` (live) updates them first when it is about the user:
  `workspace.member_added` of the user adds the workspace, `workspace.member_removed`
  of the user removes it. Both are delivered as they are (they are about the user);
- any other event of a workspace the user is not (or no longer) a member of is redacted.

Why the stream is enough: every change of a user's memberships publishes one of the two
events to that user in the same transaction (creation included; a removal publishes
before it deletes the row), and a user's ids are in commit order. An event of a workspace
committed after the removal by a transaction that had read the members before it is
numbered after `member_removed` (it waits for the user's stream row, locked by the
removal until its commit), so it is redacted too.

Why reading the memberships is safe: they must be read in the same snapshot as `as_of`
or later (`load` after the stream position, on the same connection). A later read only
knows more of the changes whose events come after `as_of`; a removal among them makes the
few events of that workspace between `as_of` and its `member_removed` redacted although
they were still the user's: never a leak. Read earlier, a removal could be missed and the
workspace replayed in full; hence the order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from rag_eventbus import DeliveredEvent

REDACTED = "event.redacted"
MEMBER_ADDED = "workspace.member_added"
MEMBER_REMOVED = "workspace.member_removed"

SELECT_MEMBERSHIPS = "SELECT workspace_id FROM workspace_members WHERE user_id = %s"


class Redaction:
    """One reader's view of the user's memberships, kept current by the stream it reads."""

    def __init__(self, user_id: UUID, member_of: Iterable[UUID | str] = (), *, as_of: int = 0) -> None:
        self._user = str(user_id)
        self._member_of = {str(w) for w in member_of}
        self._as_of = as_of

    @classmethod
    async def load(cls, conn: AsyncConnection[Any], user_id: UUID, *, as_of: int) -> Redaction:
        """The user's memberships now; call it after reading stream position `as_of`."""
        cur = await conn.execute(SELECT_MEMBERSHIPS, (user_id,))
        return cls(user_id, (row[0] for row in await cur.fetchall()), as_of=as_of)

    def apply(self, event: DeliveredEvent) -> DeliveredEvent:
        """`event` as the user may see it; call it for each event, in id order."""
        workspace = event.payload.get("workspace_id")
        if workspace is None:
            return event
        if event.type in (MEMBER_ADDED, MEMBER_REMOVED) and event.payload.get("user_id") == self._user:
            if event.id > self._as_of:
                if event.type == MEMBER_ADDED:
                    self._member_of.add(workspace)
                else:
                    self._member_of.discard(workspace)
            return event
        if workspace in self._member_of:
            return event
        return DeliveredEvent(
            id=event.id,
            type=REDACTED,
            payload={"workspace_id": workspace},
            created_at=event.created_at,
            traceparent=event.traceparent,
        )
