"""`GET /api/ws`: authenticate, then hand the socket to the hub (CONTRACT.md §5).

- Auth: `?token=<JWT>` or `Authorization: Bearer <JWT>`. The handshake is always
  accepted; a bad or missing token is answered by a close with 4401 and no frame.
- `?last_event_id=N` resumes after N; absent (or empty): live only. A value that is
  not a non-negative integer gets an `invalid_parameter` error frame after hello and
  the connection continues live only.
"""

from __future__ import annotations

import structlog
from starlette.websockets import WebSocket

from rag_api.auth import AuthError
from rag_api.deps import authenticate
from rag_api.metrics import WEBSOCKET_CLOSES
from rag_api.realtime import frames
from rag_api.realtime.hub import RealtimeHub

log = structlog.get_logger("rag_api.realtime")


def parse_last_event_id(raw: str | None) -> tuple[int | None, str | None]:
    """(resume_after, error message) from the query parameter."""
    if raw is None or raw == "":
        return None, None
    if not (raw.isascii() and raw.isdigit()):
        return None, "last_event_id must be a non-negative integer; continuing with live events only."
    return int(raw), None


async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        user_id = authenticate(websocket, websocket.query_params.get("token"))
    except AuthError as exc:
        log.info("websocket_unauthorized", reason=str(exc))
        WEBSOCKET_CLOSES.labels(code=str(frames.CLOSE_UNAUTHORIZED)).inc()
        await websocket.close(frames.CLOSE_UNAUTHORIZED, "unauthorized")
        return
    hub: RealtimeHub | None = getattr(websocket.app.state, "hub", None)
    if hub is None:
        WEBSOCKET_CLOSES.labels(code=str(frames.CLOSE_SERVER_ERROR)).inc()
        await websocket.close(frames.CLOSE_SERVER_ERROR, "realtime unavailable")
        return
    resume_after, param_error = parse_last_event_id(websocket.query_params.get("last_event_id"))
    structlog.contextvars.bind_contextvars(user_id=str(user_id))
    await hub.connection(websocket, user_id).serve(resume_after, param_error)
