"""HTML: the text a reader sees, nothing else.

The stdlib parser is tolerant of broken markup and has no dependencies. Skipped: the
contents of script, style, noscript, template, head (title, meta, link...), svg, math,
iframe, object, canvas, select and textarea. (Not the `hidden` attribute: a parser that
builds no tree cannot find where an arbitrary unclosed element ends, and guessing wrong
would drop visible text.) Block elements start a new line, paragraph-like ones a new
paragraph (never more than one blank line, however deeply nested); table cells are
separated by tabs, rows by line breaks; whitespace collapses as a browser collapses it,
except inside `<pre>`.

Decoding: a BOM, else the `<meta charset>` (or http-equiv content type) in the first
bytes, else the plain-text order (UTF-8, Windows-1252, Latin-1). ISO-8859-1 and ASCII
labels mean Windows-1252, as in every browser.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import normalize_text
from rag_parse_worker.extract.txt import bom_encoding, decode_text

SKIP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "head",
        "title",
        "svg",
        "math",
        "iframe",
        "object",
        "canvas",
        "select",
        "textarea",
    }
)
# Elements that may appear in <head>; anything else starting means the head ended
# (its end tag is optional and often missing).
HEAD_CONTENT = frozenset({"title", "meta", "link", "style", "script", "base", "noscript", "template"})
PARAGRAPH = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "dl",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "main",
        "figure",
        "form",
        "fieldset",
        "address",
        "details",
        "hr",
        "body",
    }
)
LINE = frozenset(
    {"div", "li", "tr", "br", "dt", "dd", "caption", "figcaption", "summary", "legend", "option", "label"}
)
CELL = frozenset({"td", "th"})
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)

_WS = re.compile(r"[ \t\n\r\f]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_WINDOWS_1252_LABELS = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii", "cp819"}

CHUNK = 256 * 1024


def decode_html(data: bytes) -> str:
    if bom_encoding(data) is None:
        match = _META_CHARSET.search(data[:4096])
        if match:
            label = match.group(1).decode("ascii", "replace").lower()
            if label in _WINDOWS_1252_LABELS:
                label = "cp1252"
            try:
                name = codecs.lookup(label).name
            except LookupError:
                name = ""
            # A page that lies about UTF-16 cannot be ASCII-compatible markup: ignore it.
            if name and not name.startswith(("utf-16", "utf-32")):
                if name == "cp1252":
                    try:
                        return data.decode("cp1252")
                    except UnicodeDecodeError:
                        return data.decode("latin-1")
                return data.decode(name, errors="replace")
    return decode_text(data)[0]


class _VisibleText(HTMLParser):
    def __init__(self, budget: TextBudget) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._budget = budget
        self._skip: list[str] = []  # open skipped elements, innermost last
        self._in_head = False
        self._pre = 0
        self._newlines = 2  # line breaks at the end of the output (the start counts as a paragraph)
        self._cells = 0  # cells seen in the current table row

    def _emit(self, text: str) -> None:
        self._budget.add(len(text))
        self.parts.append(text)

    def _ensure_newlines(self, n: int) -> None:
        if self._newlines < n:
            self._emit("\n" * (n - self._newlines))
            self._newlines = n

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._in_head and tag not in HEAD_CONTENT:
            self._in_head = False  # <body> or content: the head ended without </head>
        if tag == "head":
            self._in_head = True
            return
        if self._skip or self._in_head:
            if tag in SKIP and tag not in VOID:
                self._skip.append(tag)
            return
        if tag in SKIP:
            self._skip.append(tag)
            return
        if tag == "tr":
            self._cells = 0
        if tag in CELL:
            if self._cells:
                self._emit("\t")
                self._newlines = 0
            self._cells += 1
            return
        self._break(tag)
        if tag == "pre":
            self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <p/>: a break, never an open element.
        if not self._skip and not self._in_head:
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
            return
        if self._skip:
            if tag in self._skip:
                # Close it and anything left open inside it.
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if self._in_head:
            return
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag != "br":  # "</br>" is read as <br> by browsers, but one break is enough here
            self._break(tag)

    def _break(self, tag: str) -> None:
        if tag in PARAGRAPH:
            self._ensure_newlines(2)
        elif tag in LINE:
            if tag == "br":  # every <br> counts, even several in a row
                self._emit("\n")
                self._newlines += 1
            else:
                self._ensure_newlines(1)

    def handle_data(self, data: str) -> None:
        if self._skip or self._in_head:
            return
        if not self._pre:
            data = _WS.sub(" ", data)
            if data == " " and self._newlines:
                return  # indentation between block elements
        if data:
            self._emit(data)
            self._newlines = len(data) - len(data.rstrip("\n"))


def extract_html(data: bytes, limits: Limits) -> str:
    markup = decode_html(data)
    parser = _VisibleText(TextBudget(limits))
    for start in range(0, len(markup), CHUNK):
        parser.feed(markup[start : start + CHUNK])
    parser.close()
    return normalize_text("".join(parser.parts))
