"""Plain text and Markdown: decode the bytes, then normalise.

Encoding, in order: a byte-order mark (UTF-32 before UTF-16, since the UTF-32-LE mark
starts with the UTF-16-LE one); BOM-less UTF-16 recognised by its NUL bytes (ASCII in
UTF-16 is otherwise valid UTF-8, full of NULs); strict UTF-8; Windows-1252 when it
decodes (what "Latin-1" files usually are, and what browsers do for ISO-8859-1);
Latin-1, which decodes any byte string, as the last resort.
"""

from __future__ import annotations

import codecs

from rag_parse_worker.extract.limits import Limits
from rag_parse_worker.extract.normalize import normalize_text

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when `data` starts with a byte-order mark."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when the NULs sit on one side of each byte pair."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    pairs = len(sample) // 2
    if odd > pairs * 0.3 and even < pairs * 0.05:
        return "utf-16-le"
    if even > pairs * 0.3 and odd < pairs * 0.05:
        return "utf-16-be"
    return None


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding used)."""
    found = bom_encoding(data)
    if found is not None:
        name, skip = found
        # A BOM is a strong signal: keep the text even if a few bytes are damaged.
        return data[skip:].decode(name, errors="replace"), name
    if 0 in data[:4096]:
        guess = _utf16_without_bom(data)
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
