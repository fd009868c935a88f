"""Real web pages from public extractor test suites (fixtures/html/, see its NOTICE.md).

For each page: sentences a reader sees on it (from the suite's own expected output:
Readability's expected.html, trafilatura's evaldata.json "with" snippets) appear in the text
exactly, after white space is collapsed; text a reader never sees (scripts, styles,
comments, noscript, the <head>) does not; no markup leaks; the text passes the garbage
check with no U+FFFD; and the charset came out right, shown by a sentence in the page's own
script (Chinese, Polish, German umlauts, Japanese, Arabic, Russian).

Two of trafilatura's pages declare UTF-8 and are UTF-8 but for a few Latin-1 bytes in
invisible places (an ad's script comment, an image's alt text); they came out as mojibake
until charset.py read "nearly UTF-8" as UTF-8. NHK's easy-Japanese page prints furigana
over its kanji with <ruby>/<rt>; the readings were interleaved into the words ("子こども")
until html.py skipped ruby annotations.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag_parse_worker.extract import Limits, extract
from rag_parse_worker.extract.charset import SAMPLE_BYTES, decode, nearly_utf8
from rag_parse_worker.extract.html import decode_html, extract_html, meta_charset
from rag_parse_worker.extract.quality import measure
from rag_testing.linear_time import assert_linear, cpu_seconds

HTML = Path(__file__).parent / "fixtures" / "html"
CHARSETS = Path(__file__).parent / "fixtures" / "charsets"
LIMITS = Limits()
# Markup a reader never sees as text; "<emscripten.h>" in a code sample is text.
_MARKUP = re.compile(r"</?(?:html|head|body|div|span|p|a|script|style|table|tr|td|img|meta|link)\b", re.I)


@dataclass(frozen=True, slots=True)
class Page:
    name: str
    encoding: str  # the Python codec the page is decoded with
    how: str  # which step of charset.py's rule decided (Decoded.how)
    seen: tuple[str, ...]  # sentences a reader sees (the first in the page's own script)
    unseen: tuple[str, ...]  # text in scripts, styles, comments, noscript, head


PAGES = [
    Page(
        "readability-qq.html",
        # <meta charset=gb2312>, but the bytes are UTF-8: the declaration lies.
        "utf-8",
        "utf-8",
        (
            "这款产品具有极其重要的意义，因为这意味着未来的人工智能技术可能不需要人类来教它就能回答人类提出的问题。",
            "DeepMind称，DNC还可以帮你规划从沼泽门到皮卡迪利广场的最佳路线。",
            "DeepMind新电脑已可利用记忆自学 人工智能迈上新台阶",
        ),
        ("jackiejiang add house.com use", "var t = i.split(", ".adpip_Aritcle_QQ", "_科技_腾讯网"),
    ),
    Page(
        "readability-v8-blog.html",
        "utf-8",
        "utf-8",
        (
            "Emscripten has always focused first and foremost on compiling to the Web and other "
            "JavaScript environments like Node.js.",
            'When emcc sees we only want Wasm then it makes it "standalone" - a Wasm file that can run by '
            "itself as much as possible, without any JavaScript runtime code from Emscripten.",
            "Disassembling it, it's very minimal - just 87 bytes!",
        ),
        (
            "document.documentElement.className",
            "Outside the web: standalone WebAssembly binaries using Emscripten ·",
        ),
    ),
    Page(
        "readability-keep-tabular-data.html",
        "utf-8",
        "utf-8",
        (
            "This week was the time to close and finish all the things that will go to 0.17.0.",
            "If the playtesting goes well, we will let you know next Friday, and if it is the case, we will "
            "aim to release the week starting 25th February.",
            "Posted by kovarex, TOGos, Ernestas, Albert on 2019-02-15, all posts",
        ),
        ("_setAccount", ".header_cell", "Javascript is required for proper functioning of these web pages"),
    ),
    Page(
        "readability-table-style-attributes.html",
        "utf-8",
        "utf-8",
        (
            "In December 2002, I tried to install some software on my computer. The experience was, shall we "
            "say, less than pleasant. On many levels. I wrote about my experience, as I so often do.",
            "So of course that day I got hundreds of emails about it.",
            "linux usability ...or, why do I bother. © 2002, 2003 Jamie Zawinski",
        ),
        # A commented-out welcome box and a commented-out address.
        ("Slashdot readers!", "If you have any comments on this article", "jwz@jwz.org", "linux video"),
    ),
    Page(
        "trafilatura-rp-pl.html",
        "cp1250",
        "declared",
        (
            "Ciężar dyskusji przeniesie",
            "To jest moment fundamentalny",
            "Na lepszą konkurencyjność gospodarki",
        ),
        ("Google Tag Manager", "__gm_tcfapi-stub", "fbTrack", 'Sejm zagłosował "za" - Polityka - rp.pl'),
    ),
    Page(
        "trafilatura-maescot.html",
        # Declared UTF-8, and UTF-8 but for one Latin-1 byte in an ad's script comment.
        "utf-8",
        "nearly-utf-8",
        (
            "Schaf, Standardausführung, weiß",
            "Bei diesem arroganten Schafweibchen",
            "Eine Intellektuelle, die",
            "Hauptmenü",
        ),
        ("google_ad_client", "_wpemojiSettings", "img.wp-smiley", "piwik.php"),
    ),
    Page(
        "trafilatura-tierschutzpartei.html",
        # Declared UTF-8; four Latin-1 bytes in an image's alt text ("Mitgefühl wählen!").
        "utf-8",
        "nearly-utf-8",
        (
            "Baden-Württemberg",
            "Dortmund-Dorstfeld jedoch anders sein",
            "Ewald Ferlemann und sein",
            "Sebastian Everding stellt nach",
        ),
        ('"@context":"https://schema.org"', "img.wp-smiley", "Mitgefühl wählen!", 'path fill="#3b5998"'),
    ),
    Page(
        "trafilatura-next2games.html",
        "cp1252",  # ISO-8859-1 declared: Windows-1252, as in every browser
        "declared",
        (
            "Neben dem Startgebiet in einer klimatisch eher gemäßigten",
            "zu entdecken, was Anno 1800 noch in petto hält.",
            "Wie in jedem Titel der mittlerweile über 20 Jahre",
        ),
        ("GoogleAnalyticsObject", "facebookmeta", "next2games | Vorschauen: Anno 1800 Beta"),
    ),
    Page(
        "trafilatura-he-xinhuanet.html",
        "gb2312",
        "declared",
        (
            "一个约定，信守15年，感人至深；一段真情，延续15年",
            "秦皇岛、承德、张家口等10个设区市演出(此前已在保定市演出多场)，引起强烈反响。",
            "如今，向河北农大果树93(01)班毕业生群体学习的热潮正在全省各地深入开展。廊坊以巡演为",
        ),
        (
            "archive_analytics",
            "FILE ARCHIVED ON 02:42:52 Jun 11, 2012",
            "JAVASCRIPT APPENDED BY WAYBACK MACHINE",
        ),
    ),
    Page(
        "trafilatura-nhk.html",
        "utf-8",
        "bom",
        (
            "子どもへの虐待をなくすための法律ができて、親が子どもを教育するために、",
            "法律では虐待をした親に専門家が子どもの育て方を",
            "虐待したときに叱っていただけだと言う親がいます。新しい法律では",
        ),
        ("NHKSNS.initSNSOnLoad", "_cb_sections_preset", "NEWS WEB EASY|"),
    ),
    Page(
        "trafilatura-assabah.html",
        "utf-8",
        "utf-8",
        ("منذ بدء", "كل المجالات", "وماذا عن حقيقة"),
        ("getElementsByTagName", "pubdarassabah.com", "الصباح | Assabah"),
    ),
    Page(
        "chardet-shift-jis.html",
        "cp932",  # no declaration: detected
        "detected",
        (
            "衆院議院運営委員会は９日午後の理事会で、１３日に本会議を開き、２兆円の定額給付金を盛り込んだ"
            "２００８年度第２次補正予算案と関連法案を採決することを小坂憲次委員長の職権で決めた。",
            "民主党は「給付金の議論が不十分」と反発、参院審議には当面応じない方針。",
        ),
        ("Shift_JIS",),  # the <title>
    ),
    Page(
        "chardet-windows-1251.html",
        "cp1251",
        "detected",
        (
            "МОСКВА, 9 янв - РИА Новости. Надежды на разрешение в пятницу кризиса с транзитом российского "
            "газа в Европу через территорию Украины пока не оправдались.",
            'представителей "Газпрома", однако вечером стало известно',
        ),
        ("windows-1251",),  # the <title>
    ),
]


def collapse(text: str) -> str:
    return " ".join(text.split())


def page_bytes(name: str) -> bytes:
    return (HTML / name).read_bytes()


def test_every_page_is_tested_and_the_set_stays_small() -> None:
    on_disk = sorted(path.name for path in HTML.glob("*.html"))
    assert on_disk == sorted(page.name for page in PAGES)
    assert sum((HTML / name).stat().st_size for name in on_disk) < 1_000_000


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_a_real_page_gives_the_text_a_reader_sees(page: Page) -> None:
    data = page_bytes(page.name)
    result = extract(data, page.name, "")  # raises UnreadableText on garbage
    text = collapse(result.text)
    for sentence in page.seen:
        assert collapse(sentence) in text
    for hidden in page.unseen:
        assert collapse(hidden) not in text
    assert _MARKUP.search(result.text) is None
    assert "\ufffd" not in result.text
    assert measure(result.text).problem() is None

    label = meta_charset(data)
    decoded = decode(data, declared=label.decode("ascii") if label else None)
    assert (decoded.encoding, decoded.how) == (page.encoding, page.how)


def test_a_page_whose_meta_charset_lies_is_read_by_its_bytes() -> None:
    data = page_bytes("readability-qq.html")
    assert meta_charset(data) == b"gb2312"
    # Read by the declaration, the same bytes are nonsense (or fail): the page's first
    # sentence is not in it.
    assert "这款产品具有极其重要的意义" not in data.decode("gb18030", errors="replace")
    assert "这款产品具有极其重要的意义" in decode_html(data)


@pytest.mark.parametrize("name", ["trafilatura-maescot.html", "trafilatura-tierschutzpartei.html"])
def test_a_utf8_page_with_a_few_latin1_bytes_is_not_mojibake(name: str) -> None:
    data = page_bytes(name)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = extract(data, name, "").text
    # What detection made of them before: every UTF-8 umlaut as two letters.
    assert not re.search("Ã[\u0080-\u00bf]|Ă[\u0080-\u00ff]|â€", text)
    assert text.count("ü") + text.count("ä") + text.count("ö") + text.count("ß") >= 10


def test_the_stray_latin1_bytes_themselves_read_as_latin1() -> None:
    # maescot's stray byte is in an ad's script comment ("/* M\xe4scot Breit */").
    data = page_bytes("trafilatura-maescot.html")
    assert "/* Mäscot Breit */" in decode_html(data)
    # tierschutzpartei's are in an alt attribute.
    assert 'alt="Am 26. September: Mitgefühl wählen!"' in decode_html(
        page_bytes("trafilatura-tierschutzpartei.html")
    )


def test_ruby_readings_do_not_split_the_words_they_annotate() -> None:
    text = extract(page_bytes("trafilatura-nhk.html"), "nhk.html", "").text
    assert "子どもへの体罰を禁止する法律ができる" in text  # the headline, as a reader reads it
    assert "子こども" not in text and "体罰たいばつ" not in text
    # The annotated words are all still there: the kanji of "児童相談所" (a children's centre).
    assert text.count("児童相談所") == 4


def test_table_rows_and_cells_of_a_real_page() -> None:
    text = extract(page_bytes("readability-keep-tabular-data.html"), "fff.html", "").text
    rows = [line.split("\t") for line in text.split("\n") if "\t" in line]
    assert rows[0][:5] == ["", "General UX", "UX draft", "UX review", "UI mockup"]
    assert rows[1][0] == "Load map" and len(rows[1]) == len(rows[0])
    # 23 tasks, each a row: its name and owner ("Quick&nbsp;bar&nbsp;<i><b>Twinsen</b></i>"), then
    # one cell per stage (images, so empty).
    assert len(rows) == 24 and all(len(row) == len(rows[0]) for row in rows)
    assert [row[0] for row in rows[9:12]] == ["Quick bar Twinsen", "Train GUI kovarex", "Technology GUI Oxyd"]
    assert rows[-1][0] == "Recipe explorer ?"


def test_code_in_pre_keeps_its_lines_and_its_entities() -> None:
    text = extract(page_bytes("readability-v8-blog.html"), "v8.html", "").text
    # <pre><code> with <br /> between the lines, &lt;emscripten.h&gt;; indentation is
    # collapsed like every run of spaces (the output shape of every format).
    assert (
        "// add.c\n#include <emscripten.h>\n\nEMSCRIPTEN_KEEPALIVE\nint add(int x, int y) {\nreturn x + y;\n}"
        in text
    )
    assert "emcc -O3 add.c -o add.wasm" in text


# The rules behind the fixes, on small inputs: ruby annotations end where a browser ends
# them and never swallow the page; "nearly UTF-8" is a narrow, measured band.


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p><ruby>子<rt>こ</rt></ruby>ども</p>", "子ども"),
        ("<ruby>漢<rp>(</rp><rt>kan</rt><rp>)</rp>字<rp>(</rp><rt>ji</rt><rp>)</rp></ruby>です", "漢字です"),
        # The end tag is optional: the next <rb>/<rt> or the end of the ruby ends an annotation.
        ("<p><ruby>漢<rt>kan<rb>字<rt>ji</ruby>です</p><p>next</p>", "漢字です\n\nnext"),
        ("<ruby>東京<rtc><rt>とう<rt>きょう</rtc></ruby>に", "東京に"),
        ("<ruby>a<rt><span>x</span>y</rt></ruby>b", "ab"),
        ("<ruby>a<rt>x<script>var rt = 1</script>y</rt></ruby>b", "ab"),
        # Never closed: the end of its parent ends it, the rest of the page is text.
        ("<p><ruby>a<rt>never closed</p><p>visible after</p>", "a\n\nvisible after"),
        ("<ruby>a<rt><b>x</ruby> seen <i>z</i> tail", "a seen z tail"),
        # Outside a <ruby>, a browser shows an <rt> as text.
        ("<p>stray <rt>annotation</rt> shown</p>", "stray annotation shown"),
    ],
)
def test_ruby_annotations_are_skipped_as_a_browser_lays_them_out(markup: str, text: str) -> None:
    assert extract_html(markup.encode(), LIMITS) == text


@pytest.mark.parametrize(
    "shape",
    [
        lambda n: b"<ruby>a<rt>" * (n // 11),
        lambda n: b"<rt>" * (n // 4),
        lambda n: b"<ruby><rt><b>" * (n // 13),
        lambda n: b"<ruby>a<rt>b</ruby>" * (n // 19),
    ],
    ids=["unclosed-ruby-rt", "rt-runs", "rt-with-open-elements", "closed-ruby"],
)
def test_ruby_shapes_are_linear(shape: Callable[[int], bytes]) -> None:
    assert_linear(lambda data: extract_html(data, LIMITS), shape)


def test_nearly_utf8_reads_the_stray_bytes_in_the_declared_code_page() -> None:
    utf8 = "Zażółć gęślą jaźń, ".encode() * 4  # 36 valid multi-byte sequences
    stray = "ł".encode("cp1250")  # 0xB3: not UTF-8
    data = utf8 + b"Bia" + stray + b"ystok"
    assert decode(data, declared="windows-1250").text.endswith("Białystok")
    assert decode(data, declared="iso-8859-2").text.endswith("Bia\u0142ystok")  # 0xB3 is ł there too
    assert decode(data).text.endswith("Bia³ystok")  # undeclared: Windows-1252
    assert decode(data, declared="shift_jis").text.endswith("Bia³ystok")  # not a single-byte page
    assert decode(data).how == "nearly-utf-8"


def test_nearly_utf8_needs_real_utf8_and_few_strays() -> None:
    valid = "é".encode()
    assert nearly_utf8(valid * 16 + b"\xe9") is not None  # 16 valid, 1 stray
    assert nearly_utf8(valid * 15 + b"\xe9") is None  # too little UTF-8 to be evidence
    assert nearly_utf8(valid * 40 + b"\xe9" * 4) is not None  # one stray per 10 valid
    assert nearly_utf8(valid * 40 + b"\xe9" * 5) is None
    assert nearly_utf8(b"plain ascii \xe9") is None


@pytest.mark.parametrize("name", ["chardet-shift-jis.html", "chardet-windows-1251.html"])
def test_legacy_pages_are_not_nearly_utf8(name: str) -> None:
    assert nearly_utf8(page_bytes(name)) is None


@pytest.mark.parametrize("path", sorted(CHARSETS.glob("*.txt")), ids=lambda path: path.name)
def test_legacy_sample_texts_are_not_nearly_utf8(path: Path) -> None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert nearly_utf8(data) is None
    else:  # a UTF-8 original: re-encoded in its language's code pages, it is legacy text
        text = data.decode("utf-8")
        for encoding in ("cp1251", "koi8-r", "cp1250", "iso8859-2", "cp1252", "cp1256", "cp1253", "gb18030"):
            try:
                legacy = text.encode(encoding)
            except UnicodeEncodeError:
                continue
            if not legacy.isascii():
                assert nearly_utf8(legacy) is None, encoding


def test_nearly_utf8_is_judged_on_a_sample_and_costs_a_decoding_pass() -> None:
    legacy = ("Москва, 9 января. Надежды на разрешение кризиса.\n" * 600_000).encode("cp1251")
    assert len(legacy) > 20 * SAMPLE_BYTES
    assert cpu_seconds(lambda: nearly_utf8(legacy)) < 1.0  # refused on the first 256 KB
    line = "Grüße aus München, schöne Straße.\n"
    page = (line * 19 + "Grüße aus M\udcfcnchen.\n").encode("utf-8", "surrogateescape") * 10_000
    started = time.process_time()
    text = nearly_utf8(page)
    assert time.process_time() - started < 2.0
    assert text is not None and text.count("München") == 200_000 and "\ufffd" not in text
