"""Plain text and Markdown: decode the bytes, then normalise.

Encoding, in order: a byte-order mark; BOM-less UTF-16 recognised by its NUL bytes (both
signals come from rag_core.formats, whose upload check accepts as text what is decoded
here); strict UTF-8; Windows-1252 when it decodes (what "Latin-1" files usually are, and
what browsers do for ISO-8859-1); Latin-1, which decodes any byte string, as the last resort.
"""

from __future__ import annotations

from rag_core.formats import bom_encoding, utf16_without_bom
from rag_parse_worker.extract.limits import Limits
from rag_parse_worker.extract.normalize import normalize_text


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding used)."""
    found = bom_encoding(data)
    if found is not None:
        name, skip = found
        # A BOM is a strong signal: keep the text even if a few bytes are damaged.
        return data[skip:].decode(name, errors="replace"), name
    if 0 in data[:4096]:
        guess = utf16_without_bom(data)
        if guess is not None:
            try:
                return data.decode(guess), guess
            except UnicodeDecodeError:
                pass
    for name in ("utf-8", "cp1252"):
        try:
            return data.decode(name), name
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def extract_txt(data: bytes, limits: Limits) -> str:
    text, _ = decode_text(data)
    return normalize_text(text)
