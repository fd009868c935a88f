"""Every text extractor is linear in its input: 1 MB of each hostile shape, and the growth.

Before, Python 3.11's ``html.parser`` re-scanned an unclosed construct (``<a``, ``</``,
``<?``, ``<![CDATA[``, ``<meta``) to the end of the input from every ``<``: 256 KB of ``<a``
took 40 s, so 1 MB about 10 minutes; the ``<meta charset`` search and the "is this
skipped element open?" test were quadratic as well. The bounds are generous (CPU time, a
loaded 2-core machine): what matters is minutes against well under a second.
bench/pathological.py has the figures.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from rag_parse_worker.extract import LimitExceeded, Limits
from rag_parse_worker.extract.docx import extract_docx
from rag_parse_worker.extract.html import _VisibleText, decode_html, extract_html, meta_charset
from rag_parse_worker.extract.limits import TextBudget
from rag_parse_worker.extract.normalize import normalize_text
from rag_parse_worker.extract.txt import extract_txt
from rag_testing.linear_time import MB, assert_linear, cpu_seconds

from .builders import document_xml, make_docx, para

LIMITS = Limits()


def repeat(piece: str) -> Callable[[int], bytes]:
    return lambda n: (piece * (n // len(piece.encode()))).encode()


HTML_SHAPES: dict[str, Callable[[int], bytes]] = {
    "nested-divs": lambda n: ("<div>" * (n // 10) + "x" + "</div>" * (n // 10)).encode(),
    "unclosed-divs": repeat("<div>"),
    "nested-skipped-then-end-tags": lambda n: ("<svg>" * (n // 10) + "</p>" * (n // 8)).encode(),
    "unclosed-meta": repeat("<meta"),
    "unclosed-meta-charset": repeat("<meta charset"),
    "lt-runs": repeat("<"),
    "lt-letter": repeat("<a"),
    "lt-slash": repeat("</"),
    "lt-bang": repeat("<!"),
    "lt-question": repeat("<?"),
    "unclosed-cdata": repeat("<![CDATA["),
    "closed-tags": repeat("<a>"),
    "empty-comments": repeat("<!---->"),
    "comment-dashes": lambda n: ("<!--" + "-" * (n - 4)).encode(),
    "quotes-in-a-tag": lambda n: ("<a " + "='\"" * (n // 3)).encode(),
    "equals-in-a-tag": lambda n: ("<a " + "= " * (n // 2) + ">x").encode(),
    "ampersands": repeat("&"),
    "charrefs": repeat("&#"),
    "entities": repeat("&amp;"),
    "tiny-paragraphs": repeat("<p>a</p>"),
    "one-long-line": repeat("x"),
    "whitespace": lambda n: (" \n\t" * (n // 3) + "x").encode(),
    "unclosed-script": lambda n: ("<script>" + "</" * (n // 2)).encode(),
    "script-end-spaces": lambda n: ("<script></" + " " * n).encode(),
    "table-cells": repeat("<td>"),
    "br-runs": repeat("<br>"),
}


@pytest.mark.parametrize("shape", list(HTML_SHAPES))
def test_html_extraction_is_linear_on_each_hostile_shape(shape: str) -> None:
    assert_linear(lambda data: extract_html(data, LIMITS), HTML_SHAPES[shape])


def test_the_meta_charset_scan_is_linear_and_still_finds_the_label() -> None:
    assert meta_charset(b"<meta" * 200_000) is None
    assert meta_charset(
        b'<meta name="x"><meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
    ) == (b"koi8-r")
    assert meta_charset(b"<meta" * 500 + b' charset="latin1">') == b"latin1"
    assert decode_html(b"<META CHARSET=windows-1251><p>\xcf\xf0\xe8") == "<META CHARSET=windows-1251><p>При"
    assert cpu_seconds(lambda: meta_charset(b"<meta " * 200_000)) < 1.0


class _StdlibDriver(HTMLParser):
    """Drives the same text handlers with the stdlib tokenizer, as the extractor did before."""

    def __init__(self, out: _VisibleText) -> None:
        super().__init__(convert_charrefs=True)
        self.handle_starttag = out.handle_starttag  # type: ignore[method-assign]
        self.handle_startendtag = out.handle_startendtag  # type: ignore[method-assign]
        self.handle_endtag = out.handle_endtag  # type: ignore[method-assign]
        self.handle_data = out.handle_data  # type: ignore[method-assign]


def stdlib_text(page: str) -> str:
    out = _VisibleText(TextBudget(LIMITS))
    parser = _StdlibDriver(out)
    parser.feed(page)
    parser.close()
    return normalize_text("".join(out.parts))


PIECES = [
    "<p>",
    "</p>",
    "<div class='a b'>",
    "</div>",
    "<br>",
    "<br/>",
    "<hr />",
    "<h2 id=x>",
    "</h2>",
    "<ul><li>",
    "</li>",
    "<table><tr><td>",
    "</td><td>",
    "</tr></table>",
    "<pre>",
    "</pre>",
    "<script>if (a < b && c > d) { x = '<p>no</p>'; }</script>",
    "<style>p > a { color: red }</style>",
    "<svg><text>drawn</text></svg>",
    "<!-- a comment with <p> inside -->",
    "<!DOCTYPE html>",
    "<a href=\"/x?a=1&amp;b=2\" title='5 > 4'>",
    "</a>",
    "<img src=x alt=y>",
    "Caf&eacute; &amp; bar",
    "&#233;t&#xE9;",
    "a < b",
    " plain words ",
    "\n  indented\n",
    "x\ty",
    "<span>",
    "</span>",
    "<b>bold</b>",
    "<noscript>no</noscript>",
    "<title>t</title>",
    "<textarea>typed</textarea>",
]


def test_ordinary_pages_read_exactly_as_the_stdlib_parser_read_them() -> None:
    rng = random.Random(12)
    for _ in range(400):
        page = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 60)))
        if rng.random() < 0.3:
            page = "<html><head><meta charset='utf-8'><title>T</title></head><body>" + page + "</body></html>"
        assert extract_html(page.encode(), LIMITS) == stdlib_text(page), page


def test_a_construct_left_open_at_the_end_swallows_the_rest() -> None:
    assert extract_html(b"<p>kept</p><!-- open comment <p>lost", LIMITS) == "kept"
    assert extract_html(b"<p>kept</p><a href='x", LIMITS) == "kept"
    assert extract_html(b"<p>kept<script>var a = 1;", LIMITS) == "kept"


TXT_SHAPES: dict[str, Callable[[int], bytes]] = {
    "spaces": repeat(" "),
    "newlines": repeat("\n"),
    "crlf": repeat("\r\n"),
    "space-newline": repeat(" \n"),
    "space-tab-space": repeat(" \t "),
    "nbsp-space": repeat("\u00a0 "),
    "controls": repeat("\x01"),
    "form-feeds": repeat("\f"),
    "one-long-line": repeat("x"),
    "dots": repeat("."),
    "hashes": repeat("#"),
    "combining-marks": repeat("e\u0301"),
    "tiny-paragraphs": repeat("a.\n\n"),
    "latin-1": lambda n: b"\xe9" * n,
    # Detection (charset.py) runs on every non-UTF-8 text: legacy text and noise.
    "cyrillic-cp1251": lambda n: ("Съешь же ещё этих мягких французских булок. " * (n // 45 + 1)).encode(
        "cp1251"
    )[:n],
    "random-high-bytes": lambda n: random.Random(n).randbytes(n).translate(bytes(range(128, 256)) * 2),
}


@pytest.mark.parametrize("shape", list(TXT_SHAPES))
def test_text_decoding_and_normalising_is_linear_on_each_hostile_shape(shape: str) -> None:
    assert_linear(lambda data: extract_txt(data, LIMITS), TXT_SHAPES[shape])


def _docx(body: str) -> bytes:
    return make_docx(document_xml(body))


DOCX_SHAPES: dict[str, Callable[[int], bytes]] = {
    "nested-elements": lambda n: _docx("<w:p>" * (n // 12) + "</w:p>" * (n // 12)),
    "tiny-paragraphs": lambda n: _docx(para("a") * (n // 60)),
    "one-long-text": lambda n: _docx("<w:p><w:r><w:t>" + "y" * n + "</w:t></w:r></w:p>"),
    "one-long-attribute": lambda n: _docx('<w:p w:x="' + "y" * n + '"/>'),
    "tabs-and-breaks": lambda n: _docx("<w:p><w:r>" + "<w:tab/><w:br/>" * (n // 16) + "</w:r></w:p>"),
    "nested-tables": lambda n: _docx(
        "<w:tbl><w:tr><w:tc>" * (n // 30) + "</w:tc></w:tr></w:tbl>" * (n // 30)
    ),
}


@pytest.mark.parametrize("shape", list(DOCX_SHAPES))
def test_docx_extraction_is_linear_on_each_hostile_shape(shape: str) -> None:
    def extract(data: bytes) -> object:
        try:
            return extract_docx(data, LIMITS)
        except Exception as exc:  # a refusal is fine; only the time matters here
            return exc

    assert_linear(extract, DOCX_SHAPES[shape])


def test_one_giant_xml_token_is_refused_before_it_costs_seconds() -> None:
    noise = os.urandom(10 * MB).hex()  # 20 MB that compresses 2:1 (passes the bomb checks)
    for body in (f'<w:p w:x="{noise}"/>', f"<!--{noise}-->"):
        data = _docx(body)
        started = time.process_time()
        with pytest.raises(LimitExceeded, match="single XML element larger than 16 MB"):
            extract_docx(data, LIMITS)
        assert time.process_time() - started < 5.0
    # A text run as long streams as it is parsed: it is read, not refused.
    text = extract_docx(_docx(f"<w:p><w:r><w:t>{noise}</w:t></w:r></w:p>"), LIMITS)
    assert text == noise
