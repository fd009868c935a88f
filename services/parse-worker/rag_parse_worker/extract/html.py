"""HTML: the text a reader sees, nothing else.

Tokenised here, in one left-to-right pass whose cost is linear in the input however the
markup is broken. The stdlib's ``html.parser`` is not: on Python 3.11 an unclosed
construct (``<a`` or ``</`` or ``<?`` repeated, many ``<meta`` without ``>``) is re-scanned
to the end of the input from every ``<``, so 256 KB of ``<a`` took 40 s. The tokenizer reads
what the stdlib parser read (tags, comments, declarations, processing instructions, the
raw text of script and style, character references in text), except that a construct left
open at the end of the input swallows the rest of it, as in a browser. Skipped: the
contents of script, style, noscript, template, head (title, meta, link...), svg, math,
iframe, object, canvas, select and textarea, and ruby annotations (rt, rp, rtc: the reading
printed above a word, furigana, would otherwise split it: "子こども" for "子ども"). (Not the `hidden` attribute: a parser that
builds no tree cannot find where an arbitrary unclosed element ends, and guessing wrong
would drop visible text.) Block elements start a new line, paragraph-like ones a new
paragraph (never more than one blank line, however deeply nested); table cells are
separated by tabs, rows by line breaks; whitespace collapses as a browser collapses it,
except inside `<pre>`.

Decoding: charset.py's rule, with the `<meta charset>` (or http-equiv content type) of
the first bytes as the declaration: a BOM, then valid UTF-8, then the declared charset if
the bytes agree with it, then detection. ISO-8859-1 and ASCII labels mean Windows-1252,
as in every browser.
"""

from __future__ import annotations

import html
import re
from collections import Counter

from rag_parse_worker.extract.charset import decode
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import normalize_text

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
        "rt",
        "rp",
        "rtc",
    }
)
# Ruby annotations: their end tag is optional (the next annotation, an <rb>, or the end of
# the ruby ends one), so an unclosed <rt> must not swallow the rest of the page; outside a
# <ruby> a browser shows them as text.
RUBY_TEXT = frozenset({"rt", "rp", "rtc"})
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
# A <meta> tag up to its ">" (or the end): one match per tag, so the scan is linear even on
# thousands of "<meta" without ">" (``<meta[^>]+charset`` re-scanned from each of them).
_META_TAG = re.compile(rb"<meta[^>]*+", re.IGNORECASE)
_CHARSET = re.compile(rb"""charset\s*+=\s*+["']?\s*+([A-Za-z0-9._:-]++)""", re.IGNORECASE)
META_SCAN_BYTES = 4096

# Tokens. A tag name as the stdlib parser reads it; the rest of a tag up to its ">" (or the
# end of the input), where a quoted attribute value may hold a ">". Possessive and atomic:
# nothing is re-scanned.
_TAG = re.compile(
    r"""<(/?)([a-zA-Z][^\t\n\r\f />\x00]*+)(?>[^>"'=]++|=\s*+"[^"]*+"|=\s*+'[^']*+'|[="'])*+(>|\Z)"""
)
_CONSTRUCT = re.compile(r"<[a-zA-Z/!?]")  # where markup may start; any other "<" is text
_COMMENT_END = re.compile(r"--\s*+>")
_RAW_TEXT_END = {
    "script": re.compile(r"</\s*+script\s*+>", re.IGNORECASE),
    "style": re.compile(r"</\s*+style\s*+>", re.IGNORECASE),
}


def meta_charset(data: bytes) -> bytes | None:
    """The charset label of the first ``<meta>`` in the first bytes that declares one."""
    for tag in _META_TAG.finditer(data, 0, META_SCAN_BYTES):
        # The last one in the tag, as the greedy pattern used before found.
        labels = [m.group(1) for m in _CHARSET.finditer(data, tag.start() + 6, tag.end())]
        if labels:
            return labels[-1]
    return None


def decode_html(data: bytes) -> str:
    """The page's text: the `<meta>` charset is a declaration that charset.py checks."""
    label = meta_charset(data)
    return decode(data, declared=label.decode("ascii", "replace") if label else None).text


class _VisibleText:
    """What a reader sees, from the tokens (the handler names of ``html.parser``)."""

    def __init__(self, budget: TextBudget) -> None:
        self.parts: list[str] = []
        self._budget = budget
        self._skip: list[str] = []  # open skipped elements, innermost last
        self._skip_open: Counter[str] = Counter()  # the same, counted: O(1) "is it open?"
        self._nested_in_ruby_text = 0  # elements open inside the innermost rt/rp/rtc
        self._ruby = 0  # open <ruby> elements
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
        if self._in_ruby_text():
            if tag in RUBY_TEXT or tag == "rb":
                self._close_ruby_text()  # the next annotation or base ends this one
            elif tag not in VOID and tag not in SKIP:
                self._nested_in_ruby_text += 1
        if self._skip or self._in_head:
            if tag in SKIP and tag not in VOID:
                self._open_skipped(tag)
            return
        if tag == "ruby":
            self._ruby += 1
        if tag in SKIP and (self._ruby or tag not in RUBY_TEXT):
            self._open_skipped(tag)
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
        if self._in_ruby_text() and tag != self._skip[-1]:
            if self._nested_in_ruby_text and tag not in RUBY_TEXT and tag != "ruby":
                self._nested_in_ruby_text -= 1
                return
            self._close_ruby_text()  # the end of its parent (the ruby) ends it
        if self._skip:
            if self._skip_open[tag]:
                # Close it and anything left open inside it.
                while self._skip:
                    closed = self._skip.pop()
                    self._skip_open[closed] -= 1
                    if closed in RUBY_TEXT:
                        self._nested_in_ruby_text = 0
                    if closed == tag:
                        break
            return
        if self._in_head:
            return
        if tag == "ruby" and self._ruby:
            self._ruby -= 1
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag != "br":  # "</br>" is read as <br> by browsers, but one break is enough here
            self._break(tag)

    def _open_skipped(self, tag: str) -> None:
        self._skip.append(tag)
        self._skip_open[tag] += 1

    def _in_ruby_text(self) -> bool:
        return bool(self._skip) and self._skip[-1] in RUBY_TEXT

    def _close_ruby_text(self) -> None:
        self._skip_open[self._skip.pop()] -= 1
        self._nested_in_ruby_text = 0

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


def tokenize(markup: str, out: _VisibleText) -> None:
    """Feed ``markup``'s tokens to ``out`` in one pass: every step consumes what it scanned
    (a construct left open swallows the rest of the input), so the cost is linear."""
    n = len(markup)
    pos = 0
    while pos < n:
        found = _CONSTRUCT.search(markup, pos)
        lt = n if found is None else found.start()
        if lt > pos:
            out.handle_data(html.unescape(markup[pos:lt]))
        if lt >= n:
            return
        tag = _TAG.match(markup, lt)
        if tag is not None:
            if not tag.group(3):
                return  # the input ends inside a tag: dropped, as a browser does
            name = tag.group(2).lower()
            pos = tag.end()
            if tag.group(1):
                out.handle_endtag(name)
            elif tag.group().endswith("/>"):
                out.handle_startendtag(name, [])
            else:
                out.handle_starttag(name, [])
                raw_end = _RAW_TEXT_END.get(name)
                if raw_end is not None:  # script/style: raw text up to the end tag
                    close = raw_end.search(markup, pos)
                    if close is None:
                        return
                    out.handle_endtag(name)
                    pos = close.end()
            continue
        if markup.startswith("<!--", lt):
            close = _COMMENT_END.search(markup, lt + 4)
            pos = n if close is None else close.end()
        elif markup.startswith("<![", lt):
            end = markup.find("]]>", lt + 3)
            pos = n if end < 0 else end + 3
        else:  # <!DOCTYPE ...>, <!...>, <?...>, </ not followed by a letter: up to ">"
            end = markup.find(">", lt + 2)
            pos = n if end < 0 else end + 1


def extract_html(data: bytes, limits: Limits) -> str:
    text = _VisibleText(TextBudget(limits))
    tokenize(decode_html(data), text)
    return normalize_text("".join(text.parts))
