"""PowerPoint and Excel: the text a user sees on each slide and in each cell, and hostile packages refused."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from rag_core.formats import MIME_TYPES
from rag_parse_worker.extract import (
    PAGE_SEPARATOR,
    CorruptFile,
    EncryptedFile,
    LimitExceeded,
    Limits,
    UnreadableText,
    UnsupportedFormat,
    extract,
)
from rag_parse_worker.extract.xlsx import format_kind, number_text, serial_text

from .builders import (
    S,
    group,
    make_pptx,
    make_xlsx,
    make_zip,
    rels,
    shape,
    slide_table,
    slide_xml,
)

FIXTURES = Path(__file__).parent / "fixtures"
CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512
LAUGHS_DTD = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'


# ------------------------------------------------------------------------ pptx


def test_presentation_is_a_page_per_slide_with_notes_tables_and_groups() -> None:
    result = extract((FIXTURES / "review.pptx").read_bytes(), "review.pptx", MIME_TYPES["pptx"])
    assert result.format == "pptx" and result.page_count == 2
    first, second = result.text.split(PAGE_SEPARATOR)
    # The slide number placeholder (12) and the notes page's slide image are furniture.
    assert first == (
        "Quarterly review\n\nRevenue grew in every region\nCosts fell\nagain\n\nMention the new office in Lyon."
    )
    assert second == "Regions\n\nRegion\tSales\nNorth\t1,200\n\nGrouped caption\n\nDeeply grouped note"


def test_slides_come_in_the_order_of_the_slide_list_and_blank_slides_stay_pages() -> None:
    slides: list[tuple[str, str | None]] = [
        (slide_xml(shape("Written first, shown last")), None),
        (slide_xml(), None),
        (slide_xml(shape("Shown first")), None),
    ]
    result = extract(make_pptx(slides, order=[2, 1, 0]), "d.pptx", "")
    assert result.text.split(PAGE_SEPARATOR) == ["Shown first", "", "Written first, shown last"]
    assert result.page_count == 3


def test_the_slide_limit_is_said_before_any_slide_is_read() -> None:
    deck = make_pptx([(slide_xml(shape(f"Slide {i}")), None) for i in range(6)])
    assert extract(deck, "ok.pptx", "", Limits(max_slides=6)).page_count == 6
    with pytest.raises(LimitExceeded) as info:
        extract(deck, "big.pptx", "", Limits(max_slides=5))
    assert info.value.message == "The presentation has more than 5 slides, the limit."


def test_presentation_bomb_and_dtd_are_refused() -> None:
    padding = "<a:p/>" * 2_000_000  # 12 MB of XML that deflates ~1000:1
    bomb = make_pptx([(slide_xml(shape("x"), "<p:sp><p:txBody>" + padding + "</p:txBody></p:sp>"), None)])
    assert len(bomb) < 200_000
    with pytest.raises(LimitExceeded) as info:
        extract(bomb, "bomb.pptx", "")
    assert info.value.message == (
        "The PowerPoint presentation expands to an unreasonable size when unpacked and was not processed."
    )
    laughs = LAUGHS_DTD + slide_xml(shape("&lol2;")).split("?>", 1)[1]
    with pytest.raises(CorruptFile) as dtd:
        extract(make_pptx([(laughs, None)]), "lol.pptx", "")
    assert dtd.value.message == "The file is not a valid PowerPoint presentation (.pptx)."


def test_broken_legacy_and_locked_presentations() -> None:
    with pytest.raises(CorruptFile):
        extract(b"PK\x03\x04 truncated", "x.pptx", MIME_TYPES["pptx"])
    with pytest.raises(CorruptFile):
        extract(make_pptx([("<p:sld><unclosed>", None)]), "bad.pptx", "")
    with pytest.raises(UnsupportedFormat) as legacy:
        extract(CFB, "old.pptx", MIME_TYPES["pptx"])
    assert ".ppt" in legacy.value.message
    with pytest.raises(EncryptedFile):
        extract(CFB + "EncryptionInfo".encode("utf-16-le"), "locked.pptx", MIME_TYPES["pptx"])


def test_a_presentation_of_garbage_is_unreadable_not_indexed() -> None:
    noise = " ".join(["\ue000\ue001\ue002 :., dP . . i,"] * 40)
    with pytest.raises(UnreadableText) as info:
        extract(make_pptx([(slide_xml(shape(noise)), None)]), "junk.pptx", "")
    assert info.value.message == "The presentation's text is garbled, so nothing was indexed."


def test_a_table_in_a_group_and_line_breaks_in_cells() -> None:
    deck = make_pptx([(slide_xml(group(slide_table([["a", "b"], ["c", "d"]]))), None)])
    assert extract(deck, "t.pptx", "").text == "a\tb\nc\td"


# ------------------------------------------------------------------------ xlsx


def test_workbook_rows_repeat_their_header() -> None:
    result = extract((FIXTURES / "sales.xlsx").read_bytes(), "sales.xlsx", MIME_TYPES["xlsx"])
    assert result.format == "xlsx" and result.page_count is None
    assert result.text == (
        "Sales · columns: Region; Sales; Growth; Closed\n"
        "Sales · row 2: Region: North; Sales: 1200; Growth: 5 %; Closed: 2024-03-31\n"
        "Sales · row 3: Region: Süd; Sales: 900.5; Closed: 2024-04-01\n"
        "Sales · row 4: Region: Inline; Sales: RegionSales; Growth: TRUE; Closed: #DIV/0!\n\n"
        "Figures · row 1: 1; 2; 3\n"
        "Figures · row 2: 4; 5; 6.25\n\n"
        "Shipping · columns: Cargo; Port\n"
        "Shipping · row 2: Cargo: Copper kettles shipped by freighter; Port: Reykjavik"
    )


def test_the_1904_date_system_and_cells_beyond_the_header() -> None:
    rows: list[list[object]] = [["Name", None, "Due"], ["Ada", "unlabelled", ('s="1"', "<v>0</v>"), "extra"]]
    book = make_xlsx([("Plan", rows)], date1904=True)  # type: ignore[list-item]
    assert extract(book, "p.xlsx", "").text == (
        "Plan · columns: Name; Due\nPlan · row 2: Name: Ada; B: unlabelled; Due: 1904-01-01; D: extra"
    )


def test_number_date_and_time_rendering() -> None:
    assert number_text("1200.0") == "1200"
    assert number_text("0.30000000000000004") == "0.3"
    assert number_text("1E+20") == "1e+20"
    assert serial_text("45382.75", "datetime", False) == "2024-03-31T18:00:00"
    assert serial_text("0.5", "time", False) == "12:00:00"
    assert serial_text("-1", "date", False) == "-1"  # no date before 1900: the number
    assert format_kind("yyyy\\-mm\\-dd") == "date"
    assert format_kind("mm:ss") == "time"
    assert format_kind("m/d/yy h:mm") == "datetime"
    assert format_kind('"days" 0') == ""  # letters inside a literal show nothing
    assert format_kind("[Red]0.0%") == "percent"
    assert format_kind("General") == ""


def test_a_numeric_sheet_is_not_garbage() -> None:
    """A table of figures has few words; the quality check must still let it through."""
    rows: list[list[object]] = [[i * 10 + j + 0.5 for j in range(12)] for i in range(2000)]
    text = extract(make_xlsx([("Data", rows)]), "n.xlsx", "").text  # type: ignore[list-item]
    assert text.count("\n") == 1999 and text.startswith("Data · row 1: 0.5; 1.5; 2.5")
    headed: list[list[object]] = [["Q1", "Q2", "Q3", "Q4"]] + [[1, 2, 3, 4]] * 500
    assert "row 501: Q1: 1; Q2: 2" in extract(make_xlsx([("Q", headed)]), "q.xlsx", "").text  # type: ignore[list-item]


def test_a_giant_cell_is_cut_and_says_so() -> None:
    big = "word " * 1_000_000  # 5 MB in one shared string
    text = extract(make_xlsx([("S", [["Note"], [big]])]), "g.xlsx", "", Limits(max_cell_chars=1000)).text
    line = text.split("\n")[1]
    assert line.startswith("S · row 2: Note: word word") and line.endswith("…")
    assert len(line) < 1100
    inline = f'<worksheet xmlns="{S}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>{big}</t></is></c></row></sheetData></worksheet>'
    cut = extract(
        make_xlsx([("S", [])], raw_sheets={0: inline}), "i.xlsx", "", Limits(max_cell_chars=50)
    ).text
    assert cut.endswith("…") and len(cut) < 80


def test_row_and_cell_bounds() -> None:
    rows: list[list[object]] = [["n"]] + [[i] for i in range(30)]
    with pytest.raises(LimitExceeded) as many:
        extract(make_xlsx([("Long", rows)]), "l.xlsx", "", Limits(max_sheet_rows=20))  # type: ignore[list-item]
    assert many.value.message == 'The sheet "Long" has more than 20 rows, the limit.'
    wide: list[list[object]] = [list(range(50))]
    with pytest.raises(LimitExceeded) as cells:
        extract(make_xlsx([("Wide", wide)]), "w.xlsx", "", Limits(max_row_cells=40))  # type: ignore[list-item]
    assert cells.value.message == 'The sheet "Wide" has a row with more than 40 cells, the limit.'


def test_a_million_rows_is_refused_quickly() -> None:
    """Either guard may answer (the part's ratio, or the row bound): a readable permanent error."""
    body = "<row><c><v>1</v></c></row>" * 1_000_000
    sheet = f'<worksheet xmlns="{S}"><sheetData>{body}</sheetData></worksheet>'
    book = make_xlsx([("Big", [])], raw_sheets={0: sheet})
    with pytest.raises(LimitExceeded) as info:
        extract(book, "m.xlsx", "")
    assert "unreasonable size" in info.value.message
    # Without the ratio guard (a less compressible part), the row bound stops it.
    with pytest.raises(LimitExceeded) as rows:
        extract(book, "m.xlsx", "", Limits(max_docx_ratio=10_000.0))
    assert rows.value.message == 'The sheet "Big" has more than 100000 rows, the limit.'


def test_workbook_dtd_lying_sizes_and_broken_files() -> None:
    laughs = (
        LAUGHS_DTD
        + f'<worksheet xmlns="{S}"><sheetData><row><c t="inlineStr"><is><t>&lol2;</t></is></c></row></sheetData></worksheet>'
    )
    with pytest.raises(CorruptFile) as dtd:
        extract(make_xlsx([("S", [])], raw_sheets={0: laughs}), "lol.xlsx", "")
    assert dtd.value.message == "The file is not a valid Excel workbook (.xlsx)."
    # The shared strings declare 100 bytes and hold 60 KB: zipfile's CRC check (behind the read cap).
    data = bytearray(make_xlsx([("S", [["y" * 60_000]])]))
    name = "xl/sharedStrings.xml"
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name)
    struct.pack_into("<I", data, info.header_offset + 22, 100)
    for offset in _central_entries(bytes(data), name.encode()):
        struct.pack_into("<I", data, offset + 24, 100)
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name).file_size == 100
    with pytest.raises(CorruptFile):
        extract(bytes(data), "liar.xlsx", "")
    with pytest.raises(UnsupportedFormat) as legacy:
        extract(CFB, "old.xlsx", MIME_TYPES["xlsx"])
    assert ".xls" in legacy.value.message
    with pytest.raises(EncryptedFile):
        extract(CFB + "EncryptionInfo".encode("utf-16-le"), "locked.xlsx", MIME_TYPES["xlsx"])


def _central_entries(data: bytes, name: bytes) -> list[int]:
    found = []
    start = 0
    while (at := data.find(b"PK\x01\x02", start)) >= 0:
        if data[at + 46 : at + 46 + len(name)] == name:
            found.append(at)
        start = at + 4
    return found


def test_a_workbook_without_shared_strings_or_styles_still_reads() -> None:
    workbook = f'<workbook xmlns="{S}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Only" r:id="rId1"/></sheets></workbook>'
    sheet = f'<worksheet xmlns="{S}"><sheetData><row><c t="inlineStr"><is><r><t>Rich </t></r><r><t>text</t></r><rPh><t>ruby</t></rPh></is></c><c><v>7</v></c></row></sheetData></worksheet>'
    book = make_zip(
        [
            ("_rels/.rels", rels([("rId1", "officeDocument", "xl/workbook.xml")])),
            ("xl/workbook.xml", workbook),
            ("xl/_rels/workbook.xml.rels", rels([("rId1", "worksheet", "/xl/worksheets/s.xml")])),
            ("xl/worksheets/s.xml", sheet),
        ]
    )
    assert extract(book, "b.xlsx", "").text == "Only · row 1: Rich text; 7"
