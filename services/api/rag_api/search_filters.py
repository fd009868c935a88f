"""Search filters: by document, by stored content type, by creation time (docs/api.md "Search").

One parser for both ways a client sends them, so a search and a question refuse the same
values with the same sentence: the query parameters of `GET /api/workspaces/{id}/search`
(`document_id` and `content_type` repeatable) and the `filters` object of a question (the
same keys; arrays for the repeatable ones). Every bad value is 400 `invalid_parameter`
before anything is read or written: a value that is not a UUID, a type that is not one of
`rag_core.formats.MIME_TYPES`, a timestamp that is not RFC 3339 with an offset, a window
whose `created_after` is later than its `created_before`, more than MAX_FILTER_VALUES values
of one key, an unknown key in `filters`. A NUL character is 422 `validation_error`, as in
every other parameter and body of the api.

The window is half-open: `created_after` is inclusive, `created_before` exclusive, so that
consecutive windows ([a, b), [b, c)) neither overlap nor leave a gap.

The filters become predicates on `chunks` inside both rankings of the hybrid search (before
each ranking's candidate limit, never on the fused result), so a filtered search still finds
its `k` best chunks among those that match. Only the predicates a search uses are in its SQL
text: a generic "param IS NULL OR ..." form would hide them from the planner in a prepared
plan. A document id of another workspace matches nothing: the workspace predicate stays.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from psycopg import sql
from starlette.requests import HTTPConnection

from rag_api.errors import ApiError
from rag_core.formats import MIME_TYPES

MAX_FILTER_VALUES = 100  # per key: document ids, content types
FILTER_KEYS = ("document_id", "content_type", "created_after", "created_before")
CONTENT_TYPES = tuple(sorted(set(MIME_TYPES.values())))
# RFC 3339 `date-time`: a full date, `T` (or `t`), a time with an optional fraction, `Z` or an
# offset. ASCII digits only: `\d` would also take `２`.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Validated filters; an empty tuple or None is "no filter on this key"."""

    document_ids: tuple[UUID, ...] = ()
    content_types: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None

    @property
    def by_document(self) -> bool:
        """True when a predicate on the documents table is needed."""
        return bool(self.content_types) or self.created_after is not None or self.created_before is not None

    def __bool__(self) -> bool:
        return bool(self.document_ids) or self.by_document

    def params(self) -> dict[str, Any]:
        return {
            "filter_documents": list(self.document_ids),
            "filter_types": list(self.content_types),
            "filter_after": self.created_after,
            "filter_before": self.created_before,
        }

    def predicate(self, chunk: str) -> sql.Composable:
        """` AND ...` on the chunk table named `chunk` (its alias in the query), or nothing.

        Reads %(workspace)s and the names of `params()`.
        """
        if not self:
            return sql.SQL("")
        column = sql.SQL("{}.document_id").format(sql.Identifier(chunk))
        parts: list[sql.Composable] = []
        if self.document_ids:
            parts.append(sql.SQL(" AND {} = ANY(%(filter_documents)s::uuid[])").format(column))
        if self.by_document:
            document: list[str] = ["d.workspace_id = %(workspace)s"]
            if self.content_types:
                document.append("d.content_type = ANY(%(filter_types)s::text[])")
            if self.created_after is not None:
                document.append("d.created_at >= %(filter_after)s")
            if self.created_before is not None:
                document.append("d.created_at < %(filter_before)s")
            where = sql.SQL(" AND ".join(document))  # constant fragments only, never values
            parts.append(sql.SQL(" AND {} IN (SELECT d.id FROM documents d WHERE {})").format(column, where))
        return sql.Composed(parts)

    def as_json(self) -> dict[str, Any] | None:
        """The form stored with an answer job (and read back by `from_json`); None when empty."""
        if not self:
            return None
        return {
            "document_id": [str(d) for d in self.document_ids],
            "content_type": list(self.content_types),
            "created_after": None if self.created_after is None else self.created_after.isoformat(),
            "created_before": None if self.created_before is None else self.created_before.isoformat(),
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> SearchFilters:
        """The filters `as_json` stored (already validated when the question was posted)."""
        if not stored:
            return cls()
        return parse_filters(stored)


def parse_uuid(raw: str, name: str) -> UUID:
    if not _UUID.fullmatch(raw):
        raise invalid(f"'{name}' must be a document id (a UUID); got {_shown(raw)}.")
    return UUID(raw)


def parse_timestamp(raw: str, name: str) -> datetime:
    """An RFC 3339 `date-time` with its offset (`Z` or ±hh:mm), as an aware datetime.

    Fractions beyond microseconds are cut; a leap second (:60) is read as :59.999999, the
    last instant Python and Postgres can hold of that minute.
    """
    match = _RFC3339.fullmatch(raw)
    if match is None:
        raise invalid(f"'{name}' must be an RFC 3339 timestamp with an offset, e.g. 2026-01-31T09:00:00Z.")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micros = int((match.group(7) or "0")[:6].ljust(6, "0"))
    if second == 60:
        second, micros = 59, 999_999
    try:
        if match.group(8):
            tz: timezone = UTC
        else:
            sign = 1 if match.group(9) == "+" else -1
            tz = timezone(sign * timedelta(hours=int(match.group(10)), minutes=int(match.group(11))))
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        raise invalid(f"'{name}' is not a valid date and time: {_shown(raw)}.") from None


def _shown(raw: str) -> str:
    return repr(raw[:60] + ("…" if len(raw) > 60 else ""))


def _many(values: Sequence[str], name: str) -> list[str]:
    """The values of a repeatable key, at most the limit."""
    present = list(values)
    if len(present) > MAX_FILTER_VALUES:
        raise invalid(f"At most {MAX_FILTER_VALUES} '{name}' values are accepted; got {len(present)}.")
    return present


def _one(values: Sequence[str], name: str) -> str | None:
    present = list(values)
    if len(present) > 1:
        raise invalid(f"'{name}' may be given once.")
    return present[0] if present else None


def _build(values: Mapping[str, Sequence[str]]) -> SearchFilters:
    documents = dict.fromkeys(
        parse_uuid(v, "document_id") for v in _many(values.get("document_id", ()), "document_id")
    )
    types: dict[str, None] = {}
    for raw in _many(values.get("content_type", ()), "content_type"):
        if raw not in CONTENT_TYPES:
            raise invalid(f"'content_type' must be one of: {', '.join(CONTENT_TYPES)}; got {_shown(raw)}.")
        types[raw] = None
    after_raw = _one(values.get("created_after", ()), "created_after")
    before_raw = _one(values.get("created_before", ()), "created_before")
    after = None if after_raw is None else parse_timestamp(after_raw, "created_after")
    before = None if before_raw is None else parse_timestamp(before_raw, "created_before")
    if after is not None and before is not None and after > before:
        raise invalid("'created_after' must not be later than 'created_before'.")
    return SearchFilters(tuple(documents), tuple(types), after, before)


def query_filters(conn: HTTPConnection) -> SearchFilters:
    """The filters of a search's query string; 422 for a NUL, 400 for anything else wrong."""
    values: dict[str, list[str]] = {}
    for name in FILTER_KEYS:
        got = conn.query_params.getlist(name)
        if any("\x00" in v for v in got):
            raise ApiError(
                422, "validation_error", f"The '{name}' parameter must not contain NUL characters."
            )
        values[name] = [v for v in got if v != ""]  # an empty parameter is an absent one
    return _build(values)


def parse_filters(body: object) -> SearchFilters:
    """The `filters` object of a question: the keys of the search's parameters, arrays of
    strings for `document_id` and `content_type`, strings for the timestamps, null for absent.
    (NUL characters were refused with the body, by `read_model`.)"""
    if body is None:
        return SearchFilters()
    if not isinstance(body, Mapping):
        raise invalid("'filters' must be an object.")
    unknown = [str(k) for k in body if k not in FILTER_KEYS]
    if unknown:
        raise invalid(
            f"Unknown key in 'filters': {_shown(unknown[0])}; the keys are {', '.join(FILTER_KEYS)}."
        )
    values: dict[str, list[str]] = {}
    for name in FILTER_KEYS:
        value = body.get(name)
        if value is None:
            continue
        repeatable = name in ("document_id", "content_type")
        if repeatable and isinstance(value, list) and all(isinstance(v, str) for v in value):
            if len(value) > MAX_FILTER_VALUES:  # before any is parsed
                raise invalid(f"At most {MAX_FILTER_VALUES} '{name}' values are accepted; got {len(value)}.")
            values[name] = value
        elif not repeatable and isinstance(value, str):
            values[name] = [value]
        else:
            kind = "an array of strings" if repeatable else "a string"
            raise invalid(f"'filters.{name}' must be {kind}.")
    return _build(values)
