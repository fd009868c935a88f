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

_NEWLINES = re.compile(r"\r\n?|[\v\x85\u2028\u2029]")
# C0/C1 controls except \t \n \f, BOM / zero-width no-break space, the two non-characters
# that betray byte-order errors, lone surrogates. pdfium's U+0002 (its marker for a
# generated hyphen at a line end) is among the controls.
_REMOVE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff\ud800-\udfff]+")
_UNUSUAL_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_SPACE_RUNS = re.compile(" {2,}")
_AROUND_TAB = re.compile(r" ?\t ?")
_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def _sub(pattern: re.Pattern[str], repl: str, text: str, *needles: str) -> str:
    """Substitute only when needed: most texts contain none of the rare characters, and a
    substring test (`needles`, a memchr-speed scan) or a search is much cheaper than a sub."""
    if needles:
        if not any(needle in text for needle in needles):
            return text
        return pattern.sub(repl, text)
    return pattern.sub(repl, text) if pattern.search(text) else text


def normalize_text(text: str) -> str:
    """Normalise one block of text (one page of a PDF, or a whole document otherwise).

    Each step is a C-level scan, skipped when a cheap test shows it has nothing to do.
    """
    if not text:
        return ""
    text = _sub(_NEWLINES, "\n", text, "\r", "\v", "\x85", "\u2028", "\u2029")
    text = text.replace(PAGE_SEPARATOR, "\n\n")
    text = _sub(_REMOVE, "", text)
    text = unicodedata.normalize("NFC", text)
    text = _sub(_UNUSUAL_SPACES, " ", text)
    text = _sub(_SPACE_RUNS, " ", text, "  ")
    text = _sub(_AROUND_TAB, "\t", text, " \t", "\t ")
    text = _sub(_AROUND_NEWLINE, "\n", text, " \n", "\n ")
    text = _sub(_MANY_NEWLINES, "\n\n", text, "\n\n\n")
    return text.strip(" \n")


def join_pages(pages: list[str]) -> str:
    """Pages (already normalised) joined by the page separator; blank pages stay as pages."""
    return PAGE_SEPARATOR.join(pages)


_VISIBLE = re.compile(r"\S")


def has_text(text: str) -> bool:
    return _VISIBLE.search(text) is not None
