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

from rag_parse_worker.extract import LimitExceeded, Limits, read
from rag_parse_worker.extract.csv import extract_csv
from rag_parse_worker.extract.docx import extract_docx
from rag_parse_worker.extract.html import _VisibleText, decode_html, extract_html, meta_charset
from rag_parse_worker.extract.limits import TextBudget
from rag_parse_worker.extract.normalize import normalize_text
from rag_parse_worker.extract.pptx import extract_pptx
from rag_parse_worker.extract.txt import extract_txt
from rag_parse_worker.extract.xlsx import extract_xlsx
from rag_testing.linear_time import MB, assert_linear, cpu_seconds

from .builders import (
    S,
    document_xml,
    make_docx,
    make_eml,
    make_pptx,
    make_xlsx,
    para,
    shape,
    slide_table,
    slide_xml,
)

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


def refusal_or_text(fn: Callable[[bytes], object]) -> Callable[[bytes], object]:
    """A refusal is fine; only the time matters here."""

    def run(data: bytes) -> object:
        try:
            return fn(data)
        except Exception as exc:
            return exc

    return run


def _pptx(*shapes: str) -> bytes:
    return make_pptx([(slide_xml(*shapes), None)])


def _sheet(body: str) -> bytes:
    sheet = f'<worksheet xmlns="{S}"><sheetData>{body}</sheetData></worksheet>'
    return make_xlsx([("S", [])], raw_sheets={0: sheet})


PPTX_SHAPES: dict[str, Callable[[int], bytes]] = {
    "many-slides": lambda n: make_pptx([(slide_xml(shape("t")), None)] * min(n // 600, 1999)),
    "many-shapes": lambda n: _pptx(*[shape("word")] * (n // 200)),
    "tiny-paragraphs": lambda n: _pptx(
        "<p:sp><p:txBody>" + "<a:p><a:r><a:t>a</a:t></a:r></a:p>" * (n // 36) + "</p:txBody></p:sp>"
    ),
    "one-long-text": lambda n: _pptx(shape("y" * n)),
    "line-breaks": lambda n: _pptx(
        "<p:sp><p:txBody><a:p>" + "<a:br/>" * (n // 7) + "</a:p></p:txBody></p:sp>"
    ),
    "nested-groups": lambda n: _pptx("<p:grpSp>" * (n // 20) + shape("deep") + "</p:grpSp>" * (n // 20)),
    "table-cells": lambda n: _pptx(slide_table([["c"] * 50] * (n // 2500))),
    "nested-tables": lambda n: _pptx(
        "<a:tbl><a:tr><a:tc>" * (n // 30) + "</a:tc></a:tr></a:tbl>" * (n // 30)
    ),
    "furniture": lambda n: _pptx(*[shape("12", placeholder="sldNum")] * (n // 200)),
}


@pytest.mark.parametrize("shape_name", list(PPTX_SHAPES))
def test_pptx_extraction_is_linear_on_each_hostile_shape(shape_name: str) -> None:
    assert_linear(refusal_or_text(lambda data: extract_pptx(data, LIMITS)), PPTX_SHAPES[shape_name])


XLSX_SHAPES: dict[str, Callable[[int], bytes]] = {
    "many-rows": lambda n: _sheet(
        '<row><c t="inlineStr"><is><t>x</t></is></c><c><v>1</v></c></row>' * (n // 60)
    ),
    "wide-rows": lambda n: _sheet(("<row>" + "<c><v>1</v></c>" * 900 + "</row>") * max(n // 13_000, 1)),
    "empty-styled-cells": lambda n: _sheet("<row>" + '<c s="1"/>' * (n // 10) + "</row>"),
    "one-long-cell": lambda n: _sheet('<row><c t="inlineStr"><is><t>' + "y" * n + "</t></is></c></row>"),
    "shared-strings": lambda n: make_xlsx([("S", [[f"s{i}" for i in range(20)]] * (n // 200))]),
    "many-shared-strings": lambda n: make_xlsx([("S", [[f"s{i}"] for i in range(n // 40)])]),
    "dates": lambda n: _sheet('<row><c s="1"><v>45382.5</v></c></row>' * (n // 40)),
    "nested-rows": lambda n: _sheet("<row>" * (n // 5) + "</row>" * (n // 6)),
}


@pytest.mark.parametrize("shape_name", list(XLSX_SHAPES))
def test_xlsx_extraction_is_linear_on_each_hostile_shape(shape_name: str) -> None:
    assert_linear(refusal_or_text(lambda data: extract_xlsx(data, LIMITS)), XLSX_SHAPES[shape_name])


CSV_SHAPES: dict[str, Callable[[int], bytes]] = {
    "rows": repeat("a,b,c\n"),
    "one-long-line": repeat("x"),
    "one-long-quoted-field": lambda n: b'"' + b"y" * n + b'"',
    "quotes": repeat('"'),
    "commas": repeat(","),
    "semicolons-and-quotes": repeat(';"'),
    "newlines": repeat("\n"),
    "numbers": repeat("1,200.5;"),
    "cp1252-cells": lambda n: ("Région;Ventes\n" * (n // 14)).encode("cp1252"),
}


@pytest.mark.parametrize("shape_name", list(CSV_SHAPES))
def test_csv_extraction_is_linear_on_each_hostile_shape(shape_name: str) -> None:
    assert_linear(refusal_or_text(lambda data: extract_csv(data, LIMITS)), CSV_SHAPES[shape_name])


def _eml_with(header: str = "", body: str = "x") -> bytes:
    return ("From: a@example.org\r\n" + header + "Subject: s\r\n\r\n" + body).encode()


EML_SHAPES: dict[str, Callable[[int], bytes]] = {
    "long-body": lambda n: _eml_with(body="word " * (n // 5)),
    "many-headers": lambda n: _eml_with(header="X-A: b\r\n" * (n // 8)),
    "folded-header": lambda n: _eml_with(header="X-A: b" + "\r\n c" * (n // 4) + "\r\n"),
    "addresses": lambda n: _eml_with(header="To: " + "a@b, " * (n // 5) + "\r\n"),
    "encoded-words": lambda n: _eml_with(header="Subject: " + "=?utf-8?q?a?= " * (n // 14) + "\r\n"),
    "attachments": lambda n: make_eml(
        "b", attachments=[(f"{i}.txt", "text/plain", b"t " * (n // 200)) for i in range(90)]
    ),
    "boundaries": lambda n: (
        'From: a@b\r\nContent-Type: multipart/mixed; boundary="q"\r\n\r\n' + "--q\r\n\r\nx\r\n" * (n // 12)
    ).encode(),
    "base64-body": lambda n: (
        "From: a@b\r\nContent-Transfer-Encoding: base64\r\n\r\n" + "d29yZCB3b3Jk\r\n" * (n // 14)
    ).encode(),
}


@pytest.mark.parametrize("shape_name", list(EML_SHAPES))
def test_eml_extraction_is_linear_on_each_hostile_shape(shape_name: str) -> None:
    assert_linear(refusal_or_text(lambda data: read("eml", data, "m.eml", LIMITS)), EML_SHAPES[shape_name])
