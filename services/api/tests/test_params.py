"""The shared parsers of client input: integer and text query parameters, cursors, NUL in JSON."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from starlette.requests import Request

from rag_api.body import holds_nul
from rag_api.errors import ApiError
from rag_api.params import PG_BIGINT_MAX, choice_param, int_param, optional_int_param, parse_int, text_param
from rag_api.realtime.endpoint import parse_last_event_id
from rag_api.shapes import decode_cursor, encode_cursor


def request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query, "headers": []})


@pytest.mark.parametrize(
    "raw", ["²", "٣", "1e3", "+5", " 5", "5 ", "5_0", "0x10", "1.0", "", "-", "9" * 20, "9" * 5000, "1\x00"]
)
def test_anything_but_up_to_19_ascii_digits_is_invalid(raw: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_int(raw, "n", -(2**63), PG_BIGINT_MAX)
    assert (refused.value.status, refused.value.code) == (400, "invalid_parameter")


def test_ranges_are_inclusive_and_bigint_sized() -> None:
    assert parse_int("0", "n", 0, 10) == 0 and parse_int("10", "n", 0, 10) == 10
    assert parse_int(str(PG_BIGINT_MAX), "n", 0, PG_BIGINT_MAX) == PG_BIGINT_MAX
    assert parse_int("0000000000000000007", "n", 0, 10) == 7
    for raw in ("11", "-1", str(PG_BIGINT_MAX + 1)):
        with pytest.raises(ApiError):
            parse_int(raw, "n", 0, 10 if raw != str(PG_BIGINT_MAX + 1) else PG_BIGINT_MAX)


def test_query_parameters_default_refuse_nul_and_out_of_range() -> None:
    assert int_param(request(b""), "limit", 50, 1, 200) == 50
    assert int_param(request(b"limit="), "limit", 50, 1, 200) == 50
    assert int_param(request(b"limit=7"), "limit", 50, 1, 200) == 7
    assert optional_int_param(request(b""), "after", 0) is None
    assert text_param(request(b"q=tea"), "q") == "tea"
    assert choice_param(request(b"status=queued"), "status", ("queued", "error")) == "queued"
    cases: list[tuple[bytes, Any, tuple[int, str]]] = [
        (b"limit=%C2%B2", lambda r: int_param(r, "limit", 50, 1, 200), (400, "invalid_parameter")),
        (b"limit=201", lambda r: int_param(r, "limit", 50, 1, 200), (400, "invalid_parameter")),
        (b"limit=1%00", lambda r: int_param(r, "limit", 50, 1, 200), (422, "validation_error")),
        (b"q=a%00b", lambda r: text_param(r, "q"), (422, "validation_error")),
        (b"status=nope", lambda r: choice_param(r, "status", ("queued",)), (400, "invalid_parameter")),
    ]
    for query, parse, expected in cases:
        with pytest.raises(ApiError) as refused:
            parse(request(query))
        assert (refused.value.status, refused.value.code) == expected, query


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def test_a_cursor_round_trips() -> None:
    when, row_id = datetime(2026, 11, 29, 16, 19, 14, 123456, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(when, row_id)) == (when, row_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "é",
        "x" * 300,
        cursor_of({"2026-01-01T00:00:00+00:00": 1, str(uuid.uuid4()): 2}),  # an object unpacks to its keys
        cursor_of(["2026-01-01T00:00:00+00:00", str(uuid.uuid4()), 3]),
        cursor_of(["2026-01-01T00:00:00+00:00"]),
        cursor_of(["2026-01-01T00:00:00+00:00", {"x": 1}]),
        cursor_of(["2026-01-01T00:00:00+00:00", 12345]),
        cursor_of([20260101, str(uuid.uuid4())]),
        cursor_of(["2026-01-01T00:00:00", str(uuid.uuid4())]),  # naive
        cursor_of(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]),  # before year 1 in UTC
        cursor_of(["9999-12-31T23:59:59-14:00", str(uuid.uuid4())]),  # after 9999 in UTC
        cursor_of(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        cursor_of(None),
        cursor_of("just a string"),
    ],
)
def test_a_malformed_cursor_is_invalid_cursor(cursor: str) -> None:
    with pytest.raises(ApiError) as refused:
        decode_cursor(cursor)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


def test_nul_is_found_anywhere_in_a_json_value_keys_included() -> None:
    assert not holds_nul({"name": "tea", "list": [1, 2.0, None, True, {"k": "v"}]})
    assert holds_nul({"name": "a\x00b"})
    assert holds_nul({"a": [{"b": ["ok", "\x00"]}]})
    assert holds_nul({"ke\x00y": 1})
    deep: Any = "\x00"
    for _ in range(5000):  # deeper than any recursion limit
        deep = [deep]
    assert holds_nul(deep)


@pytest.mark.parametrize("raw", ["abc", "9" * 5000, str(2**63), "-1", "²", "1\x00", "1.5", "+3", " 7"])
def test_a_malformed_last_event_id_is_an_error_message_not_an_exception(raw: str) -> None:
    resume_after, error = parse_last_event_id(raw)
    assert resume_after is None and error is not None and "last_event_id" in error


def test_a_valid_last_event_id_resumes() -> None:
    assert parse_last_event_id(None) == (None, None)
    assert parse_last_event_id("") == (None, None)
    assert parse_last_event_id("0") == (0, None)
    assert parse_last_event_id(str(2**63 - 1)) == (2**63 - 1, None)
