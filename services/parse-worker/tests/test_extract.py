"""The extractors on real files (tests/fixtures, made by builders.py) and on hostile ones."""

from __future__ import annotations

import codecs
import io
import struct
import zipfile
from pathlib import Path

import pytest

from rag_core.formats import MIME_TYPES
from rag_parse_worker.extract import (
    CorruptFile,
    EncryptedFile,
    LimitExceeded,
    Limits,
    NoTextFound,
    UnsupportedFormat,
    decode_text,
    detect_format,
    extract,
    normalize_text,
)

from .builders import (
    LATIN1_TEXT,
    MULTIPAGE_PAGES,
    SAMPLE_HTML,
    document_xml,
    fixture_files,
    make_docx,
    make_pdf,
    para,
    table,
)

FIXTURES = Path(__file__).parent / "fixtures"
DOCX_TYPE = MIME_TYPES["docx"]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_committed_fixtures_are_what_the_builders_make() -> None:
    for name, data in fixture_files().items():
        assert fixture(name) == data, f"{name}: run `python services/parse-worker/tests/builders.py`"


# ------------------------------------------------------------------------ text


def test_utf16_with_bom() -> None:
    result = extract(fixture("utf16-bom.txt"), "utf16-bom.txt", "text/plain")
    assert result.text == "UTF-16 text: 日本語, été, Δελτα.\nSecond line."
    assert result.format == "txt" and result.page_count is None


@pytest.mark.parametrize("codec", ["utf-16-be", "utf-32-le", "utf-32-be", "utf-8"])
def test_every_byte_order_mark(codec: str) -> None:
    bom = {
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
        "utf-32-be": codecs.BOM_UTF32_BE,
        "utf-8": codecs.BOM_UTF8,
    }[codec]
    text, used = decode_text(bom + "Ωmega ünïcode".encode(codec))
    assert (text, used) == ("Ωmega ünïcode", codec)


def test_utf16_without_bom_is_recognised_by_its_nul_bytes() -> None:
    assert decode_text("plain ascii in utf-16".encode("utf-16-le")) == ("plain ascii in utf-16", "utf-16-le")
    assert decode_text("big endian é".encode("utf-16-be")) == ("big endian é", "utf-16-be")


def test_latin1_file_decodes_as_windows_1252() -> None:
    result = extract(fixture("latin1.txt"), "latin1.txt", "text/plain")
    assert result.text == LATIN1_TEXT.strip()
    # Smart quotes and the euro sign only exist in Windows-1252.
    assert decode_text(b"\x93quoted\x94 \x80 5") == ("\u201cquoted\u201d \u20ac 5", "cp1252")
    # Bytes undefined in Windows-1252 (0x81) fall back to Latin-1, which decodes anything.
    assert decode_text(b"caf\xe9 \x81") == ("café \x81", "latin-1")


def test_markdown_is_kept_as_text() -> None:
    result = extract(fixture("notes.md"), "notes.md", "text/markdown")
    assert result.format == "md"
    assert result.text == "# Notes\n\nSome *markdown* text.\n\n- item one\n- item two"


def test_normalisation() -> None:
    raw = "  Cafe\u0301\u00a0\u00a0 au   lait \r\n\r\n\r\n\r\nnext\x00\x07 line\u2028end\ttab \t x\fpage\ufeff  "
    assert normalize_text(raw) == "Café au lait\n\nnext line\nend\ttab\tx\n\npage"
    assert normalize_text("\x02hyphen\x1b") == "hyphen"
    assert normalize_text("lone \ud800 surrogate") == "lone surrogate"


def test_whitespace_only_text_is_an_error() -> None:
    with pytest.raises(NoTextFound) as info:
        extract(b" \r\n\t \x00 ", "empty.txt", "text/plain")
    assert info.value.message == "No text could be extracted from the file."


def test_extracted_text_size_limit() -> None:
    with pytest.raises(LimitExceeded) as info:
        extract(b"word " * 300, "big.txt", "text/plain", Limits(max_text_bytes=1000))
    assert info.value.message == "The extracted text is larger than the 0.000953674 MB limit."
    # Multi-byte characters count in bytes, not characters.
    with pytest.raises(LimitExceeded):
        extract("é".encode() * 600, "x.txt", "text/plain", Limits(max_text_bytes=1000))


# ------------------------------------------------------------------------ html


def test_html_keeps_visible_text_only() -> None:
    result = extract(fixture("page.html"), "page.html", "text/html")
    assert result.text == (
        "Home | Docs\n\nCafé & Bakery\n\nFresh bread every morning.\nOpen 7 days.\n\n"
        "Croissant\nBaguette\n\nItem\tPrice\nTart\t3 €"
    )
    for hidden in ("secret", "not visible", "Page title", "enable JavaScript", "template text", "styled"):
        assert hidden not in result.text


def test_html_with_an_unclosed_head_and_a_latin1_charset() -> None:
    page = b'<html><head><meta charset="iso-8859-1"><title>x</title><p>Cr\xe8me \x93br\xfbl\xe9e\x94</p>'
    assert extract(page, "p.htm", "").text == "Crème \u201cbrûlée\u201d"
    assert SAMPLE_HTML  # the fixture's source, kept in builders.py


def test_html_nested_blocks_and_pre() -> None:
    page = b"<div>one<div>two</div>three</div><pre>a  b\n  c</pre><p>x<br><br>y</p><script>x<y</script>"
    assert extract(page, "", "text/html").text == "one\ntwo\nthree\n\na b\nc\n\nx\n\ny"


# ------------------------------------------------------------------------- pdf


def test_multipage_pdf_has_one_form_feed_per_page_break() -> None:
    result = extract(fixture("multipage.pdf"), "multipage.pdf", "application/pdf")
    assert result.page_count == 4
    assert result.text.split("\f") == ["\n".join(lines) for lines in MULTIPAGE_PAGES]


def test_corrupt_truncated_and_fake_pdfs_are_permanent_errors() -> None:
    for data in (fixture("corrupt.pdf"), fixture("truncated.pdf"), b"GIF89a not a pdf at all"):
        with pytest.raises(CorruptFile) as info:
            extract(data, "x.pdf", "application/pdf")
        assert info.value.message == "The file is not a valid PDF."


def test_encrypted_pdf() -> None:
    with pytest.raises(EncryptedFile) as info:
        extract(fixture("encrypted.pdf"), "secret.pdf", "application/pdf")
    assert info.value.message == "The PDF is encrypted and cannot be read. Upload a copy without a password."


def test_a_damaged_pdf_after_an_encrypted_one_is_damaged_not_encrypted() -> None:
    """PDFium's last error is process-global and this file's failure does not set it: read
    alone it gives no error code, read after an encrypted PDF it gives that one's (as in a
    long-lived extraction child)."""
    for name in ("encrypted.pdf", "damaged-xref.pdf", "encrypted.pdf", "damaged-xref.pdf"):
        expected = EncryptedFile if name == "encrypted.pdf" else CorruptFile
        with pytest.raises(expected):
            extract(fixture(name), name, "application/pdf")


def test_pdf_without_text() -> None:
    with pytest.raises(NoTextFound):
        extract(fixture("blank.pdf"), "scan.pdf", "application/pdf")


def test_pdf_page_limit() -> None:
    data = make_pdf([[f"page {i}"] for i in range(5)])
    assert extract(data, "ok.pdf", "", Limits(max_pdf_pages=5)).page_count == 5
    with pytest.raises(LimitExceeded) as info:
        extract(data, "big.pdf", "", Limits(max_pdf_pages=4))
    assert info.value.message == "The PDF has 5 pages, more than the limit of 4 pages."


# ------------------------------------------------------------------------ docx


def test_docx_paragraphs_and_tables() -> None:
    result = extract(fixture("report.docx"), "report.docx", "")
    assert result.format == "docx"
    assert result.text == (
        "Quarterly report\n\nRevenue grew strongly this quarter.\n\nName:\tAda\nSecond line\n\n"
        "Kept words\n\nRegion\tSales\tGrowth\nNorth\t1,200\t5 %\nSüd\t900\t\n\n"
        "Box text\n\nAfter the table & done."
    )
    assert "deleted words" not in result.text  # a tracked deletion is not text


def test_docx_nested_table_is_flattened_into_its_cell() -> None:
    inner = table([["a", "b"], ["c", "d"]])
    body = document_xml(
        "<w:tbl><w:tr><w:tc>"
        + para("outer")
        + inner
        + "</w:tc><w:tc>"
        + para("right")
        + "</w:tc></w:tr></w:tbl>"
    )
    assert extract(make_docx(body), "n.docx", "").text == "outer a b c d\tright"


def test_docx_decompression_bomb_is_refused_before_reading() -> None:
    padding = "<w:p/>" * 2_000_000  # 12 MB of XML that deflates ~1000:1
    bomb = make_docx(document_xml(para("x") + padding))
    assert len(bomb) < 200_000
    with pytest.raises(LimitExceeded) as info:
        extract(bomb, "bomb.docx", "")
    assert "unreasonable size" in info.value.message
    # Under a hard cap too, whatever the ratio.
    with pytest.raises(LimitExceeded):
        extract(make_docx(document_xml(para("x" * 5000))), "big.docx", "", Limits(max_docx_xml_bytes=4096))


def test_docx_that_lies_about_its_size_is_stopped_by_the_read_cap() -> None:
    name = b"word/document.xml"
    data = bytearray(make_docx(document_xml(para("y" * 20_000))))
    # Declare 100 bytes for word/document.xml in its local and its central directory header.
    local = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name.decode()).header_offset
    struct.pack_into("<I", data, local + 22, 100)
    central = bytes(data).index(b"PK\x01\x02", bytes(data).index(name, local + 30 + len(name)) - 46)
    struct.pack_into("<I", data, central + 24, 100)
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name.decode()).file_size == 100
    # zipfile never inflates past the declared size and then fails the CRC check; our own
    # read cap (max_docx_xml_bytes) stays as a second guard should that ever change.
    with pytest.raises(CorruptFile):
        extract(bytes(data), "liar.docx", "", Limits(max_docx_xml_bytes=10_000))


def test_docx_with_a_dtd_is_refused() -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
        "<w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"
    )
    with pytest.raises(CorruptFile):
        extract(make_docx(laughs), "lol.docx", "")


def test_broken_and_legacy_word_files() -> None:
    # Stored as .docx (the api's verdict), the extractor still defends itself: the api only
    # sniffs the zip signature and the part's name.
    with pytest.raises(CorruptFile) as info:
        extract(b"PK\x03\x04 truncated zip", "x.docx", DOCX_TYPE)
    assert info.value.message == "The file is not a valid Word document (.docx)."
    with pytest.raises(CorruptFile):
        extract(make_docx("<w:document><unclosed>"), "bad.docx", "")
    cfb = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512
    with pytest.raises(UnsupportedFormat) as unsupported:
        extract(cfb, "old.docx", DOCX_TYPE)
    assert ".doc" in unsupported.value.message
    with pytest.raises(EncryptedFile):
        extract(cfb + "EncryptionInfo".encode("utf-16-le"), "locked.docx", DOCX_TYPE)


# ---------------------------------------------------------------------- format


def test_the_stored_content_type_names_the_format() -> None:
    """The api's verdict (documents.content_type) first: it was decided by the same rule."""
    assert detect_format(b"%PDF-1.4", "a.txt", "application/pdf") == "pdf"
    assert detect_format(b"x", "a.pdf", "text/plain; charset=utf-8") == "txt"


def test_without_a_stored_type_the_upload_rule_decides() -> None:
    """rag_core.formats, as at upload: nothing is read here that the api would refuse."""
    assert detect_format(b"", "Notes.MD", "") == "md"
    assert detect_format(b"x", "a.txt", "image/gif") == "txt"  # not a type the api stores
    assert detect_format(make_docx(document_xml(para("x"))), "a.docx", "") == "docx"
    refused = [
        (b"%PDF-1.7 ...", "noext"),  # was: guessed from the bytes
        (b"<!DOCTYPE html><p>x", "noext"),
        (b"hello", "notes.text"),  # was: read by its extension
        (b"%PDF-1.4", "a.txt"),  # was: read as text
        (b"\x89PNG\r\n", "image.gif"),
        (b"GIF89a", "image.png"),
    ]
    for data, name in refused:
        with pytest.raises(UnsupportedFormat) as info:
            detect_format(data, name, "")
        assert info.value.code == "unsupported_media_type"
    with pytest.raises(UnsupportedFormat) as gif:
        detect_format(b"GIF89a", "image.gif", "image/gif")
    assert gif.value.message == (
        "Unsupported file type (.gif); supported: .txt, .md, .html, .htm, .pdf, .docx, .docm, .dotx, .dotm, "
        ".pptx, .pptm, .potx, .potm, .xlsx, .xlsm, .xltx, .xltm, .csv, .tsv, .eml, .png, .jpg, .jpeg, .tif, .tiff."
    )
    with pytest.raises(UnsupportedFormat) as fake:
        detect_format(b"GIF89a", "image.png", "")
    assert fake.value.message == "The file is named .png but is not a PNG image."


def test_text_the_api_now_accepts_is_read() -> None:
    """BOM-less UTF-16 and UTF-32-BE with a BOM pass the upload check: they decode right here."""
    text = "Plain words, then é and ✓."
    for data in (text.encode("utf-16-le"), text.encode("utf-16-be"), ("\ufeff" + text).encode("utf-32-be")):
        assert extract(data, "x.txt", "").text == text


def test_every_extraction_error_can_cross_from_the_child() -> None:
    """A class the wire does not know turns the child's clear error into "stopped unexpectedly"."""
    from rag_parse_worker import wire
    from rag_parse_worker.extract import ExtractionError

    # ExtractionTimeout too: the child raises it when a page passes its OCR timeout.
    assert set(wire.ERROR_CLASSES.values()) == set(ExtractionError.__subclasses__()) | {ExtractionError}
