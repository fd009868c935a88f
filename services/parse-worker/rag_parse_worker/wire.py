"""What the worker and its extraction child say to each other: JSON headers and raw bytes, never pickle.

Why not pickle (multiprocessing.connection): unpickling runs whatever code the bytes
name, so a child taken over by a hostile file (a PDFium exploit) could run code in the
worker, which holds the database and storage credentials, just by replying. Here every
message is one frame

    header length (4 bytes, big-endian) | body length (4 bytes, big-endian)
    | header: one JSON object | body: raw bytes (the document, or the extracted text)

and the reader checks both lengths against its own caps before it reads, or allocates,
anything. The worker then checks the reply field by field (`decode_reply`): an unknown
status, a missing or extra key, a wrong type, a length over a cap or text that is not
UTF-8 is a `ProtocolViolation`, which the pool handles exactly like a crash of the child.

Messages (`type` from the worker, `status` from the child):

    worker -> child: {"type": "limits", <Limits fields>, "ocr": <OcrConfig fields> | null} once,
                     {"type": "extract", "filename", "content_type"} + document bytes per file,
                     {"type": "stop"}
    child -> worker: {"status": "ready"} once, then per file any number of
                     {"status": "progress", "ocr_page"}  (before each page read by OCR)
                     and one of
                     {"status": "ok", "format", "page_count", "seconds"} + text (UTF-8)
                     {"status": "error" | "fatal", "name", "message", "code"}  ("fatal": the child exits)
                     {"status": "bug", "text"}
"""

from __future__ import annotations

import math
import os
import re
import select
import struct
import time
from dataclasses import dataclass, fields
from typing import Any, get_args

import orjson

from rag_core.formats import Format
from rag_parse_worker.extract import (
    CorruptFile,
    EncryptedFile,
    Extracted,
    ExtractionError,
    ExtractionTimeout,
    LimitExceeded,
    Limits,
    NoTextFound,
    OcrConfig,
    OcrUnavailable,
    UnreadableText,
    UnsupportedFormat,
)
from rag_parse_worker.extract.limits import max_page_count

PREFIX = struct.Struct(">II")
MAX_HEADER_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 500  # an error sentence shown to the user
MAX_BUG_CHARS = 2000  # a bug report, logged
FORMATS: frozenset[str] = frozenset(get_args(Format))

ERROR_CLASSES: dict[str, type[ExtractionError]] = {
    cls.__name__: cls
    for cls in (
        ExtractionError,
        CorruptFile,
        EncryptedFile,
        LimitExceeded,
        NoTextFound,
        OcrUnavailable,
        UnreadableText,
        UnsupportedFormat,
        ExtractionTimeout,
    )
}
ERROR_CODES: frozenset[str] = frozenset(cls.code for cls in ERROR_CLASSES.values())
_LANGUAGES = re.compile(r"[A-Za-z0-9_]{1,40}(\+[A-Za-z0-9_]{1,40}){0,9}")

Header = dict[str, Any]


class ProtocolViolation(Exception):
    """A frame that is not what the protocol allows: the sender is broken or hostile."""


@dataclass(frozen=True, slots=True)
class Ok:
    result: Extracted
    seconds: float


@dataclass(frozen=True, slots=True)
class Failed:
    """An ExtractionError by class name; `fatal`: the child exits after sending it."""

    name: str
    message: str
    code: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class Bug:
    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    """The child is about to read page `ocr_page` by OCR: the worker extends its deadline."""

    ocr_page: int


Outcome = Ok | Failed | Bug  # how one document ended
Reply = Outcome | Progress


# -- frames ------------------------------------------------------------------


def _wait(fd: int, event: int, deadline: float | None) -> None:
    """Block until `fd` is ready, or raise TimeoutError at the deadline (None: no deadline)."""
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    poller = select.poll()  # not select(): no FD_SETSIZE limit in a busy worker
    poller.register(fd, event)
    if not poller.poll(remaining * 1000):
        raise TimeoutError


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    """Exactly `n` bytes from `fd` (EOFError if it closes first)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        _wait(fd, select.POLLIN, deadline)
        try:
            k = os.readv(fd, [view[got:]])
        except BlockingIOError:
            continue
        if k == 0:
            raise EOFError("the other side closed the pipe")
        got += k
    view.release()
    return bytes(buf)


def write_all(fd: int, data: bytes | memoryview, deadline: float | None = None) -> None:
    view = memoryview(data)
    while view:
        _wait(fd, select.POLLOUT, deadline)
        try:
            k = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[k:]


def send(fd: int, header: Header, body: bytes = b"", deadline: float | None = None) -> None:
    raw = orjson.dumps(header)
    write_all(fd, PREFIX.pack(len(raw), len(body)) + raw, deadline)
    if body:
        write_all(fd, body, deadline)


def receive(fd: int, max_body: int, deadline: float | None = None) -> tuple[bytes, bytes]:
    """(raw header, body); ProtocolViolation before reading a length over its cap."""
    header_len, body_len = PREFIX.unpack(read_exact(fd, PREFIX.size, deadline))
    if header_len > MAX_HEADER_BYTES:
        raise ProtocolViolation(f"a header of {header_len} bytes (at most {MAX_HEADER_BYTES})")
    if body_len > max_body:
        raise ProtocolViolation(f"a body of {body_len} bytes (at most {max_body})")
    raw = read_exact(fd, header_len, deadline)
    return raw, read_exact(fd, body_len, deadline) if body_len else b""


def parse_header(raw: bytes) -> Header:
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolViolation("a header that is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolViolation("a header that is not a JSON object")
    return header


# -- the worker's messages ---------------------------------------------------


def limits_header(limits: Limits, ocr: OcrConfig | None = None) -> Header:
    return {
        "type": "limits",
        **{f.name: getattr(limits, f.name) for f in fields(Limits)},
        "ocr": None if ocr is None else {f.name: getattr(ocr, f.name) for f in fields(OcrConfig)},
    }


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode_ocr(header: Header) -> OcrConfig | None:
    """The OCR configuration of a limits message (None: no OCR)."""
    ocr = header.get("ocr")
    if ocr is None:
        return None
    if not isinstance(ocr, dict) or set(ocr) != {f.name for f in fields(OcrConfig)}:
        raise ProtocolViolation("an OCR configuration with the wrong keys")
    languages, tessdata = ocr["languages"], ocr["tessdata"]
    if not isinstance(languages, str) or not _LANGUAGES.fullmatch(languages):
        raise ProtocolViolation("OCR languages that are not Tesseract's form")
    if not isinstance(tessdata, str) or not tessdata.isprintable():
        raise ProtocolViolation("a tessdata directory that is not a path")
    if not all(_number(ocr[name]) and ocr[name] > 0 for name in ("page_timeout_seconds", "max_pages", "dpi")):
        raise ProtocolViolation("OCR limits that are not positive numbers")
    return OcrConfig(**ocr)


def decode_limits(header: Header) -> Limits:
    values: dict[str, Any] = {f.name: header.get(f.name) for f in fields(Limits)}
    if header.get("type") != "limits" or not all(map(_number, values.values())):
        raise ProtocolViolation("not a limits message")
    return Limits(**values)


def extract_header(filename: str, content_type: str) -> Header:
    return {"type": "extract", "filename": filename, "content_type": content_type}


STOP: Header = {"type": "stop"}
READY: Header = {"status": "ready"}


# -- the child's replies -----------------------------------------------------


def encode_reply(reply: Reply) -> tuple[Header, bytes]:
    if isinstance(reply, Progress):
        return {"status": "progress", "ocr_page": reply.ocr_page}, b""
    if isinstance(reply, Ok):
        result = reply.result
        header = {
            "status": "ok",
            "format": result.format,
            "page_count": result.page_count,
            "seconds": reply.seconds,
        }
        return header, result.text.encode("utf-8")
    if isinstance(reply, Failed):
        status = "fatal" if reply.fatal else "error"
        return {"status": status, "name": reply.name, "message": reply.message, "code": reply.code}, b""
    return {"status": "bug", "text": reply.text}, b""


def _keys(header: Header, *names: str) -> None:
    if set(header) != {"status", *names}:
        raise ProtocolViolation(f"keys {sorted(header)} for status {header.get('status')!r}")


def _sentence(value: object, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        raise ProtocolViolation("a text field that is not a short printable string")
    return value


def decode_ready(raw: bytes, body: bytes) -> None:
    header = parse_header(raw)
    if header != READY or body:
        raise ProtocolViolation("not a ready message")


def decode_reply(raw: bytes, body: bytes, limits: Limits) -> Reply:
    """The child's reply, checked field by field; ProtocolViolation for anything else."""
    header = parse_header(raw)
    status = header.get("status")
    if status == "ok":
        _keys(header, "format", "page_count", "seconds")
        fmt, pages, seconds = header["format"], header["page_count"], header["seconds"]
        if fmt not in FORMATS:
            raise ProtocolViolation("an unknown format")
        if pages is not None and (
            not isinstance(pages, int) or isinstance(pages, bool) or not 0 <= pages <= max_page_count(limits)
        ):
            raise ProtocolViolation("a page count that is not a count")
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ProtocolViolation("a duration that is not one")
        if len(body) > limits.max_text_bytes:
            raise ProtocolViolation("text over the limit")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("text that is not UTF-8") from None
        return Ok(Extracted(text=text, format=fmt, page_count=pages), float(seconds))
    if body:
        raise ProtocolViolation(f"a body with status {status!r}")
    if status in ("error", "fatal"):
        _keys(header, "name", "message", "code")
        if header["name"] not in ERROR_CLASSES or header["code"] not in ERROR_CODES:
            raise ProtocolViolation("an unknown error class or code")
        message = _sentence(header["message"], MAX_MESSAGE_CHARS)
        return Failed(header["name"], message, header["code"], fatal=status == "fatal")
    if status == "bug":
        _keys(header, "text")
        return Bug(_sentence(header["text"], MAX_BUG_CHARS))
    if status == "progress":
        _keys(header, "ocr_page")
        page = header["ocr_page"]
        if not isinstance(page, int) or isinstance(page, bool) or not 0 < page <= max_page_count(limits):
            raise ProtocolViolation("a page number that is not one")
        return Progress(page)
    raise ProtocolViolation(f"an unknown status {str(status)[:40]!r}")
