"""`GET /api/ws`: authenticate, then hand the socket to the hub (docs/contract.md §5).

- Auth: `?token=<JWT>` or `Authorization: Bearer <JWT>`. The handshake is always
  accepted; a bad or missing token is answered by a close with 4401 and no frame.
- `?last_event_id=N` resumes after N; absent (or empty): live only. A value that is
  not an integer in 0..2^63-1 gets an `invalid_parameter` error frame after hello and
  the connection continues live only. `&epoch=E` says which stream epoch N belongs to
  (from hello or resync_required); another epoch than the stream's: resync_required.
- The token's `exp` is kept: the connection closes with 4401 when it passes, unless the
  client sends a fresh token in an `auth` frame (connection.py).
- At most WS_MAX_CONNECTIONS_PER_USER sockets per user on this process: one more is
  accepted, then closed with 4429 (the hub counts; the user's other sockets are untouched).
"""

from __future__ import annotations

import structlog
from starlette.websockets import WebSocket

from rag_api.deps import authenticate
from rag_api.errors import ApiError
from rag_api.metrics import WEBSOCKET_CLOSES, close_code_label
from rag_api.params import PG_BIGINT_MAX, parse_int
from rag_api.realtime import frames
from rag_api.realtime.hub import RealtimeHub
from rag_api.realtime.transport import WebSocketTransport
from rag_core.tokens import AuthError

log = structlog.get_logger("rag_api.realtime")


def parse_last_event_id(raw: str | None) -> tuple[int | None, str | None]:
    """(resume_after, error message) from the query parameter.

    The same integer rule as every REST parameter (rag_api.params): 0..2^63-1 in ASCII
    digits. Anything else (`-1`, `²`, 5,000 digits, a NUL) is an error frame after
    hello, never an exception that would close the socket abnormally.
    """
    if raw is None or raw == "":
        return None, None
    try:
        return parse_int(raw, "last_event_id", 0, PG_BIGINT_MAX), None
    except ApiError:
        return None, (
            f"last_event_id must be an integer from 0 to {PG_BIGINT_MAX}; continuing with live events only."
        )


async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        claims = authenticate(websocket, websocket.query_params.get("token"))
    except AuthError as exc:
        log.info("websocket_unauthorized", reason=str(exc))
        WEBSOCKET_CLOSES.labels(code=close_code_label(frames.CLOSE_UNAUTHORIZED)).inc()
        await websocket.close(frames.CLOSE_UNAUTHORIZED, "unauthorized")
        return
    hub: RealtimeHub | None = getattr(websocket.app.state, "hub", None)
    if hub is None:
        WEBSOCKET_CLOSES.labels(code=close_code_label(frames.CLOSE_SERVER_ERROR)).inc()
        await websocket.close(frames.CLOSE_SERVER_ERROR, "realtime unavailable")
        return
    resume_after, param_error = parse_last_event_id(websocket.query_params.get("last_event_id"))
    epoch = websocket.query_params.get("epoch") or None
    structlog.contextvars.bind_contextvars(user_id=str(claims.user_id))
    await hub.connection(WebSocketTransport(websocket), claims).serve(resume_after, epoch, param_error)
