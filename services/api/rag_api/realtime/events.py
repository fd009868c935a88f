"""`GET /api/events?after=N&limit=500[&epoch=E]`: the caller's events after id N (REST resync).

200 `{"items": [event], "last_event_id", "has_more", "epoch"}`: `items` are event frames
(`{"id","type","payload","created_at"}`) with ids after N, oldest first, at most
`limit` (1..1000, default 500); `last_event_id` is the id of the last item (or N when
there is none); `has_more` tells whether more events follow; `epoch` is the stream's
(rag_eventbus.EventLog: ids of another epoch are unrelated).

409 when events after N were pruned (a partial list would silently lose some), or when
`epoch` is given and is not the stream's (N is an id of another stream):
`{"error": {"code": "resync_required", "message"}, "oldest_event_id": M, "epoch"}`. The client
reloads its state, then continues from `after=M-1` (or from the WebSocket hello).
400 `invalid_parameter` for a bad `after` (0..2^63-1) or `limit`; 401 without a valid token.

An event of a workspace the caller is no longer a member of is listed as `event.redacted`
(rag_api.realtime.redaction): the memberships are read after the events, so a removal
committed in between is known and can only redact more, never less.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response

from rag_api.deps import pool_of, require_user
from rag_api.errors import ApiError, error_response
from rag_api.params import int_param
from rag_api.realtime.redaction import Redaction
from rag_api.responses import json_response
from rag_eventbus import EventLog, ResyncRequired

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


def _pool(request: Request) -> AsyncConnectionPool[Any]:
    hub = getattr(request.app.state, "hub", None)
    if hub is not None:
        pool: AsyncConnectionPool[Any] = hub.pool
        return pool
    return pool_of(request)


async def events_endpoint(request: Request) -> Response:
    try:
        user_id = require_user(request)
        after = int_param(request, "after", 0, 0)
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        epoch = request.query_params.get("epoch") or None
        async with _pool(request).connection() as conn:
            replay = await EventLog(conn).read_after(user_id, after, limit=limit + 1, epoch=epoch)
            events = replay.events
            redaction = await Redaction.load(conn, user_id, as_of=events[-1].id if events else after)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    except ResyncRequired as exc:
        if epoch is not None and epoch != exc.epoch:
            # The client's epoch is not echoed: it is arbitrary text of any length.
            message = (
                f"The epoch given is not the stream's epoch {exc.epoch!r}: its event ids are another stream's"
            )
        else:
            message = f"Events after {after} are no longer retained"
        return error_response(
            409,
            "resync_required",
            f"{message}; reload your state (the oldest retained event is {exc.oldest_event_id}).",
            oldest_event_id=exc.oldest_event_id,
            epoch=exc.epoch,
        )
    items = [redaction.apply(e) for e in events[:limit]]
    return json_response(
        {
            "items": [
                {"id": e.id, "type": e.type, "payload": e.payload, "created_at": e.created_at} for e in items
            ],
            "last_event_id": items[-1].id if items else after,
            "has_more": len(events) > limit,
            "epoch": replay.position.epoch,
        }
    )
