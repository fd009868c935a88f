"""The one error shape of the api: {"error": {"code", "message"}} with its status."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}, **self.extra}


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    return Response(
        orjson.dumps({"error": {"code": code, "message": message}, **extra}),
        status_code=status,
        media_type="application/json",
    )


def not_found(what: str = "resource") -> ApiError:
    """Also used for resources of another workspace: existence is not revealed."""
    return ApiError(404, "not_found", f"The {what} does not exist.")
