"""JSON request bodies: bounded in size, validated with pydantic, errors in the api's shape.

(What happens to the unread body of a request refused early is the middleware's: answer and close.)
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError
from starlette.requests import Request

from rag_api.errors import ApiError

JSON_BODY_LIMIT = 64 * 1024

M = TypeVar("M", bound=BaseModel)
NAME_MAX_CHARS = 200


def not_blank(value: str) -> str:
    """The value without surrounding whitespace; refused when nothing else is left."""
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


# A workspace name or conversation title. The length is that of the text as sent, so that the
# described `maxLength` (rag_api/openapi.yaml) is exactly what is accepted; it is stored stripped.
Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX_CHARS), AfterValidator(not_blank)]


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


def holds_nul(value: Any) -> bool:
    """True if a parsed JSON value has a NUL character in any string or key.

    Iterative (orjson allows nesting 1,024 deep) and without building paths, so that
    its cost stays linear in the body.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            if any("\x00" in key for key in item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def read_model(request: Request, model: type[M]) -> M:
    """The JSON body validated against `model`: 422 validation_error naming the field.

    NUL characters are refused anywhere in the body, keys included: Postgres text cannot
    store them (the insert would fail as a 500), and no field means anything with one.
    """
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(422, "validation_error", "The request body must be a JSON object.")
    for key, value in raw.items():
        if holds_nul(key) or holds_nul(value):
            where = key.replace("\x00", "\\u0000")[:100]
            raise ApiError(
                422, "validation_error", f"Invalid field '{where}': NUL characters are not allowed."
            )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "validation_error", f"Invalid field '{where}': {first['msg']}.") from None
