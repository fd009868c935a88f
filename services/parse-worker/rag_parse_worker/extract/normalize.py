"""One text shape for every format, so the ingest worker can chunk without caring where text came from.

- Unicode NFC (a decomposed "é" from a PDF and a composed one from a .docx match in search).
- Line breaks are `\\n` (CRLF, CR, NEL, LINE/PARAGRAPH SEPARATOR, vertical tab all become `\\n`).
- Control characters are removed except `\\n` and `\\t` (table cells are tab-separated).
- `\\f` (form feed) is reserved for the PDF page separator: `extract_pdf` normalises each
  page alone and joins pages with `\\f`, so the ingest worker can number pages by counting
  them. A stray form feed inside a .txt would invent pages, so elsewhere it is a paragraph break.
- Runs of spaces (any Unicode space, NBSP included) become one space; spaces around line
  breaks and tabs go; three or more line breaks become two (a paragraph break is kept).
"""

from __future__ import annotations

import re
import unicodedata

PAGE_SEPARATOR = "\f"

_NEWLINES = re.compile(r"\r\n|[\r\v\x85\u2028\u2029]")
_SPACES = re.compile(r"[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_AROUND_TAB = re.compile(r" ?\t ?")
_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def _deletions() -> dict[int, None]:
    """Code points to drop: C0/C1 controls except \\n and \\t, BOM / zero-width no-break
    space, the two non-characters that mark byte-order errors, and pdfium's U+0002 (its
    marker for a generated hyphen at a line end)."""
    table: dict[int, None] = {}
    for cp in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)):
        if chr(cp) not in "\n\t\f":
            table[cp] = None
    for cp in (0xFEFF, 0xFFFE, 0xFFFF):
        table[cp] = None
    return table


_DELETE = _deletions()


def normalize_text(text: str) -> str:
    """Normalise one block of text (one page of a PDF, or a whole document otherwise)."""
    if not text:
        return ""
    text = _NEWLINES.sub("\n", text)
    text = text.replace(PAGE_SEPARATOR, "\n\n")
    if _SURROGATES.search(text):
        text = _SURROGATES.sub("", text)
    text = text.translate(_DELETE)
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    text = _AROUND_TAB.sub("\t", text)
    text = _AROUND_NEWLINE.sub("\n", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip(" \n")


def join_pages(pages: list[str]) -> str:
    """Pages (already normalised) joined by the page separator; blank pages stay as pages."""
    return PAGE_SEPARATOR.join(pages)


_VISIBLE = re.compile(r"\S")


def has_text(text: str) -> bool:
    return _VISIBLE.search(text) is not None
