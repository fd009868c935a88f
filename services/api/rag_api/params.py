"""Query parameters parsed one way on every route: bounded integers and text without NUL.

Why one parser: `str.isdigit` accepts `²` and `٣`, `int()` accepts `+5`, ` 5 `, `5_000`
and refuses 5,000 digits with a ValueError of its own, and Postgres refuses anything
above 2^63-1. Each of these once reached a handler as a 500. Here an integer parameter
is 1 to 19 ASCII digits (an optional leading `-` where the range allows negatives),
checked against its range before it is used; anything else is 400 `invalid_parameter`.
A NUL character in any parameter is 422 `validation_error`: Postgres text cannot hold
it, and no parameter of the api means anything with it.
"""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection

from rag_api.errors import ApiError

PG_BIGINT_MAX = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def has_nul(text: str) -> bool:
    return "\x00" in text


def text_param(conn: HTTPConnection, name: str) -> str | None:
    """The raw value of `name` (None when absent or empty); 422 if it holds a NUL."""
    raw = conn.query_params.get(name)
    if raw is None or raw == "":
        return None
    if has_nul(raw):
        raise ApiError(422, "validation_error", f"The '{name}' parameter must not contain NUL characters.")
    return raw


def parse_int(raw: str, name: str, lo: int, hi: int) -> int:
    """`raw` as an integer in lo..hi, or a 400 `invalid_parameter` naming the range."""
    if not _INTEGER.fullmatch(raw) or not lo <= (value := int(raw)) <= hi:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be an integer from {lo} to {hi}.")
    return value


def int_param(conn: HTTPConnection, name: str, default: int, lo: int, hi: int = PG_BIGINT_MAX) -> int:
    """The integer parameter `name` in lo..hi; `default` when absent or empty."""
    value = optional_int_param(conn, name, lo, hi)
    return default if value is None else value


def optional_int_param(conn: HTTPConnection, name: str, lo: int, hi: int = PG_BIGINT_MAX) -> int | None:
    """The integer parameter `name` in lo..hi, or None when absent or empty."""
    raw = text_param(conn, name)
    return None if raw is None else parse_int(raw, name, lo, hi)


def choice_param(conn: HTTPConnection, name: str, choices: tuple[str, ...]) -> str | None:
    """One of `choices`, or None when absent or empty; 400 `invalid_parameter` otherwise."""
    raw = text_param(conn, name)
    if raw is not None and raw not in choices:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be one of: {', '.join(choices)}.")
    return raw
