"""The control frames of the realtime protocol (docs/contract.md §5, docs/realtime.md).

Event frames are `DeliveredEvent.to_frame()`; everything else the server sends is
built here, as JSON text, with orjson.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

# Close codes. 4401: authentication failed (at the handshake, or later: the token expired
# without a refresh, or an `auth` frame carried an invalid token or another user's). 4408: the connection could not keep up,
# either its send backlog exceeded WS_SEND_QUEUE_MAX or it stopped answering the
# heartbeat; in both cases the client reconnects with its last id and loses nothing.
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_GOING_AWAY = 1001  # this replica is shutting down: reconnect (to another one)
CLOSE_SERVER_ERROR = 1011

PONG = b'{"type":"pong"}'
PING = b'{"type":"ping"}'


def _frame(frame_type: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": frame_type, "payload": payload})


def _timestamp(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat()


def hello(user_id: UUID, epoch: str, last_event_id: int) -> bytes:
    return _frame("hello", {"user_id": str(user_id), "epoch": epoch, "last_event_id": last_event_id})


def resync_required(oldest_event_id: int, epoch: str) -> bytes:
    return _frame("resync_required", {"oldest_event_id": oldest_event_id, "epoch": epoch})


def token_expiring(expires_at: int) -> bytes:
    return _frame("token_expiring", {"expires_at": _timestamp(expires_at)})


def auth_ok(expires_at: int) -> bytes:
    return _frame("auth_ok", {"expires_at": _timestamp(expires_at)})


def close(code: int, reason: str) -> bytes:
    """The SSE stream's last message (sse.py): the WebSocket's close code and reason."""
    return _frame("close", {"code": code, "reason": reason})


def error(code: str, message: str) -> bytes:
    return _frame("error", {"code": code, "message": message})


@dataclass(frozen=True, slots=True)
class Auth:
    """A client's `{"type":"auth","payload":{"token"}}`: the connection verifies the token."""

    token: str


def parse_client_frame(text: str | bytes) -> bytes | Auth | None:
    """The answer to one client frame: a pong, an error, None (nothing to answer), or an
    `Auth` for the connection to verify.

    `{"type":"ping"}` gets a pong. `{"type":"pong"}` (the answer to a server ping) is
    accepted silently. An auth frame whose payload has no string `token` is malformed.
    Anything else gets an error frame; the connection stays open.
    """
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return error("invalid_json", "Client frames must be JSON text.")
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return error("invalid_frame", 'A client frame is a JSON object with a string "type".')
    frame_type = body["type"]
    if frame_type == "ping":
        return PONG
    if frame_type == "pong":
        return None
    if frame_type == "auth":
        payload = body.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("token"), str):
            return error("invalid_frame", 'An auth frame is {"type":"auth","payload":{"token":"<JWT>"}}.')
        return Auth(payload["token"])
    return error(
        "unknown_type", f"Unknown frame type {frame_type[:64]!r}; the client may send ping, pong or auth."
    )
