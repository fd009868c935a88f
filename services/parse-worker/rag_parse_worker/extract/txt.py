"""Plain text and Markdown: decode the bytes (charset.py), then normalise."""

from __future__ import annotations

from rag_parse_worker.extract.charset import decode
from rag_parse_worker.extract.limits import Limits
from rag_parse_worker.extract.normalize import normalize_text


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding used)."""
    decoded = decode(data)
    return decoded.text, decoded.encoding


def extract_txt(data: bytes, limits: Limits) -> str:
    return normalize_text(decode(data).text)
