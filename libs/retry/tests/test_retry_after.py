"""Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date in any of its three formats."""

from __future__ import annotations

import pytest

from rag_retry import parse_retry_after

NOW = 784111767.0  # Sun, 06 Nov 1994 08:49:27 GMT: ten seconds before the dates below


def test_delta_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("99999999999") == 99999999999.0  # the policy caps it, not the parser


@pytest.mark.parametrize(
    "http_date",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime: no zone, GMT by definition
    ],
)
def test_http_dates_count_from_now(http_date: str) -> None:
    assert parse_retry_after(http_date, now=NOW) == pytest.approx(10.0)


def test_a_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=NOW + 3600) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "1e3", "5 seconds", "Sun, 99 Foo 1994"])
def test_absent_or_unreadable_headers_give_none(value: str | None) -> None:
    assert parse_retry_after(value) is None
