"""Request bodies: bounded JSON, and draining what a refused request still sends.

An HTTP/1.1 client writes its whole body before it reads the answer. If the server
answers and closes while the body is still arriving, the client's write fails and
it never sees the status, so a refused request's body is read to the end first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from rag_api.errors import ApiError

JSON_BODY_LIMIT = 64 * 1024

M = TypeVar("M", bound=BaseModel)


async def drain(body: AsyncIterator[bytes]) -> None:
    """Read and discard the rest of a body stream (a vanished client is fine)."""
    try:
        async for _ in body:
            pass
    except ClientDisconnect:
        pass


async def read_json(request: Request, limit: int = JSON_BODY_LIMIT) -> Any:
    """The JSON body, at most `limit` bytes: 413 body_too_large, 400 invalid_json."""
    data = bytearray()
    too_large = False
    async for chunk in request.stream():
        if too_large:
            continue
        data += chunk
        if len(data) > limit:
            too_large = True
            data.clear()
    if too_large:
        raise ApiError(413, "body_too_large", f"The JSON body is larger than {limit} bytes.")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None


async def read_model(request: Request, model: type[M]) -> M:
    """The JSON body validated against `model`: 422 validation_error naming the field."""
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(422, "validation_error", "The request body must be a JSON object.")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "validation_error", f"Invalid field '{where}': {first['msg']}.") from None
