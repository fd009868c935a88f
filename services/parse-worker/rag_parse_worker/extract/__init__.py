"""Text extraction: bytes of an uploaded file in, normalised text out.

Pure and synchronous (no I/O, no event loop): `isolation.py` runs it in a child
process with a timeout. Every failure is an `ExtractionError` whose `message` a user
can read; they are all permanent.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

from rag_parse_worker.extract.docx import extract_docx
from rag_parse_worker.extract.errors import (
    CorruptFile,
    EncryptedFile,
    ExtractionError,
    ExtractionTimeout,
    LimitExceeded,
    NoTextFound,
    UnsupportedFormat,
)
from rag_parse_worker.extract.html import extract_html
from rag_parse_worker.extract.limits import Limits, check_text_size
from rag_parse_worker.extract.normalize import PAGE_SEPARATOR, has_text, normalize_text
from rag_parse_worker.extract.pdf import extract_pdf
from rag_parse_worker.extract.txt import decode_text, extract_txt

Format = Literal["txt", "md", "html", "pdf", "docx"]

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
BY_CONTENT_TYPE: dict[str, Format] = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    DOCX_TYPE: "docx",
}
BY_EXTENSION: dict[str, Format] = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
UNSUPPORTED = "This file type is not supported. Upload a .txt, .md, .html, .pdf or .docx file."


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    format: Format
    page_count: int | None  # PDFs only: pages are separated by PAGE_SEPARATOR in `text`


def detect_format(data: bytes, filename: str = "", content_type: str = "") -> Format:
    """The api's sniffed content type first, then the extension, then the bytes."""
    mime = content_type.split(";", 1)[0].strip().lower()
    found = BY_CONTENT_TYPE.get(mime) or BY_EXTENSION.get(posixpath.splitext(filename.lower())[1])
    if found is not None:
        return found
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04") and b"word/" in data[:65536]:
        return "docx"
    lowered = head.lower()
    if b"<html" in lowered or b"<!doctype html" in lowered:
        return "html"
    raise UnsupportedFormat(UNSUPPORTED)


def extract(
    data: bytes, filename: str = "", content_type: str = "", limits: Limits | None = None
) -> Extracted:
    """Extract and normalise; raise an ExtractionError when no usable text comes out."""
    limits = limits or Limits()
    fmt = detect_format(data, filename, content_type)
    page_count: int | None = None
    if fmt == "pdf":
        text, page_count = extract_pdf(data, limits)
    elif fmt == "docx":
        text = extract_docx(data, limits)
    elif fmt == "html":
        text = extract_html(data, limits)
    else:
        text = extract_txt(data, limits)
    if not has_text(text):
        raise NoTextFound()
    check_text_size(text, limits)
    return Extracted(text=text, format=fmt, page_count=page_count)


__all__ = [
    "PAGE_SEPARATOR",
    "CorruptFile",
    "EncryptedFile",
    "Extracted",
    "ExtractionError",
    "ExtractionTimeout",
    "Format",
    "LimitExceeded",
    "Limits",
    "NoTextFound",
    "UnsupportedFormat",
    "decode_text",
    "detect_format",
    "extract",
    "normalize_text",
]
