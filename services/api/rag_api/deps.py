"""What every /api handler needs from the request: the caller, the pool, the settings."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import structlog
from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from rag_api.errors import ApiError
from rag_api.settings import ApiSettings
from rag_core.tokens import AuthError, TokenClaims, bearer_token, verify_token
from rag_storage import ObjectStore


def settings_of(conn: HTTPConnection) -> ApiSettings:
    settings: ApiSettings = conn.app.state.settings
    return settings


def pool_of(conn: HTTPConnection) -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] = conn.app.state.pool
    return pool


def store_of(conn: HTTPConnection) -> ObjectStore:
    store: ObjectStore = conn.app.state.store
    return store


def authenticate(conn: HTTPConnection, token: str | None = None) -> TokenClaims:
    """The caller's claims from `token` or the Authorization header; AuthError if none is valid."""
    settings = settings_of(conn)
    raw = token if token is not None else bearer_token(conn.headers.get("authorization"))
    return verify_token(raw, settings.jwt_secret, settings.jwt_audience)


def require_user(conn: HTTPConnection) -> UUID:
    """The caller's user id (bound to the log context), or a 401 ApiError."""
    try:
        user_id = authenticate(conn).user_id
    except AuthError as exc:
        raise ApiError(401, "unauthorized", f"Authentication failed: {exc}.") from None
    structlog.contextvars.bind_contextvars(user_id=str(user_id))
    return user_id
