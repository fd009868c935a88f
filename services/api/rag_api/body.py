"""JSON request bodies: bounded in size, validated with pydantic, errors in the api's shape.

(The body of a request refused before it was read is drained by the middleware.)
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from rag_api.errors import ApiError

JSON_BODY_LIMIT = 64 * 1024

M = TypeVar("M", bound=BaseModel)


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
