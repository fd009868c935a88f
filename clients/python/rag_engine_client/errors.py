"""The errors a caller of the client can catch: one for the API's error answers, one for a
realtime stream that stopped because no usable token is left."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A non-2xx answer, in the contract's shape `{"error": {"code", "message"}, ...}`.

    `extra` keeps the fields beside `error` (a 409 of `GET /api/events` carries
    `oldest_event_id` and `epoch`, a refused upload its `errors`), because callers act on
    them; an answer that is not the contract's shape (a proxy's HTML page) still becomes an
    ApiError, with code `http_<status>`, so callers need only one except clause.
    """

    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra: dict[str, Any] = extra or {}


class RealtimeUnauthorized(Exception):
    """The server refused the token (4401 or 401) and the token provider had no other one:
    reconnecting could only be refused again, so the stream stopped."""
