"""Streaming multipart/form-data: turn request body chunks into part events.

Starlette's `request.form()` spools every file (memory, then disk) before the handler
sees it; here python-multipart's push parser is fed chunk by chunk from the body
stream and its callbacks queue small events that the caller consumes as they come.
Nothing holds more than one body chunk (hypercorn hands them over in ≤64 KiB pieces).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_PART_HEADERS = 16
MAX_HEADER_BYTES = 8192


class InvalidMultipart(Exception):
    """The body is not well-formed multipart/form-data."""


@dataclass(frozen=True, slots=True)
class PartStart:
    name: str | None
    filename: str | None  # None: not a file part; '' is a file part with an empty name


@dataclass(frozen=True, slots=True)
class PartData:
    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    pass


PartEvent = PartStart | PartData | PartEnd


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type, or InvalidMultipart."""
    ctype, options = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        raise InvalidMultipart("The request body must be multipart/form-data.")
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise InvalidMultipart("The multipart Content-Type has no valid boundary.")
    return boundary


class _Collector:
    """python-multipart callbacks: assemble headers, queue part events."""

    def __init__(self) -> None:
        self.events: list[PartEvent] = []
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data":
            raise InvalidMultipart("A part has no 'Content-Disposition: form-data' header.")
        name = options.get(b"name")
        filename = options.get(b"filename")
        self.events.append(
            PartStart(
                name=name.decode("utf-8", "replace") if name is not None else None,
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
            )
        )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self.events.append(PartData(data[start:end]))

    def on_part_end(self) -> None:
        self.events.append(PartEnd())

    def on_end(self) -> None:
        self.ended = True


async def iter_parts(boundary: bytes, body: AsyncIterator[bytes]) -> AsyncIterator[PartEvent]:
    """Part events of `body`; raises InvalidMultipart on malformed or truncated input.

    Reads `body` only as far as the closing boundary (the caller drains any epilogue).
    """
    collector = _Collector()
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_end": collector.on_end,
        },
        max_header_count=MAX_PART_HEADERS,
        max_header_size=MAX_HEADER_BYTES,
    )
    async for chunk in body:
        if not chunk:
            continue
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidMultipart(f"Malformed multipart body: {exc}.") from None
        events, collector.events = collector.events, []
        for event in events:
            yield event
        if collector.ended:
            return
    raise InvalidMultipart("The multipart body ended before its closing boundary.")
