"""Every refusal caused by a limit, in one place: its status, code and message.

The limits themselves are settings (ApiSettings, docs/contract.md §3); handlers decide when a
limit is exceeded and raise what this module builds, so that the contract, docs/api.md,
docs/security.md and the tests name the same codes. WebSocket close codes live here too.
"""

from __future__ import annotations

import math

from rag_api.errors import ApiError

# WebSocket close codes (docs/contract.md §5).
WS_CLOSE_TOO_MANY_CONNECTIONS = 4429  # the user already holds WS_MAX_CONNECTIONS_PER_USER sockets here
WS_CLOSE_FRAME_TOO_LARGE = 1009  # RFC 6455 "message too big": a client frame above WS_MAX_FRAME_BYTES


def too_many_files(limit: int) -> ApiError:
    return ApiError(413, "too_many_files", f"An upload may hold at most {limit} files; nothing was stored.")


def too_many_uploads(limit: int, retry_after: float = 1.0) -> ApiError:
    return ApiError(
        429,
        "too_many_uploads",
        f"At most {limit} uploads of one user may run at once; retry when one has finished.",
        headers=_retry_after(retry_after),
    )


def too_many_workspaces(limit: int) -> ApiError:
    return ApiError(409, "too_many_workspaces", f"A user may create at most {limit} workspaces.")


def too_many_members(limit: int) -> ApiError:
    return ApiError(409, "too_many_members", f"A workspace may have at most {limit} members.")


def rate_limited(what: str, limit: int, retry_after: float) -> ApiError:
    """`what` is a plural noun phrase: "questions"."""
    return ApiError(
        429,
        "rate_limited",
        f"At most {limit} {what} per minute are allowed; retry in {math.ceil(retry_after)} seconds.",
        headers=_retry_after(retry_after),
    )


def invalid_content(limit: int) -> ApiError:
    return ApiError(
        400, "invalid_content", f"The content must be between 1 and {limit} characters and not blank."
    )


def database_timeout(seconds: float) -> ApiError:
    return ApiError(
        503, "database_timeout", f"The database did not answer within {seconds:g} seconds; try again later."
    )


def embedding_unavailable() -> ApiError:
    return ApiError(503, "embedding_unavailable", "The embedding service is unavailable; try again later.")


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
