"""The one format detection: a table of files and what the api and the worker make of them.

Rows marked "was:" are where the api's upload sniffer and the parse worker's own
detection disagreed before they became this one rule.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from rag_core.formats import (
    ENCRYPTED_PRESENTATION,
    ENCRYPTED_WORD,
    ENCRYPTED_WORKBOOK,
    HEAD_BYTES,
    LEGACY_DOC,
    LEGACY_PPT,
    LEGACY_XLS,
    MIME_TYPES,
    NOT_A_PRESENTATION,
    NOT_A_WORD_DOCUMENT,
    NOT_A_WORKBOOK,
    NOT_AN_EMAIL,
    SUPPORTED,
    Format,
    OoxmlScanner,
    Unsupported,
    WordScanner,
    detect,
    format_of_content_type,
    scanner_for,
    sniff,
)

NOT_A_PDF = "The file is named .pdf but is not a PDF."


def not_text(ext: str) -> str:
    return f"The content of {ext} file is not text (binary data found)."


def unsupported(shown: str) -> str:
    return f"Unsupported file type ({shown}); supported: {ALL_EXTENSIONS}."


ALL_EXTENSIONS = (
    ".txt, .md, .html, .htm, .pdf, .docx, .docm, .dotx, .dotm, .pptx, .pptm, .potx, .potm, "
    ".xlsx, .xlsm, .xltx, .xltm, .csv, .tsv, .eml, .png, .jpg, .jpeg, .tif, .tiff"
)


def docx_bytes(member: str = "word/document.xml") -> bytes:
    """A zip naming `member` (the Word part by default; the other Office formats' parts too)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(member, "<w:document><w:body><w:t>Hello</w:t></w:body></w:document>")
    return buffer.getvalue()


PPTX = docx_bytes("ppt/presentation.xml")
XLSX = docx_bytes("xl/workbook.xml")
UTF16_TEXT = "Plain words, then é and ✓.\r\n" * 20
CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512

ACCEPTED: list[tuple[str, bytes, Format]] = [
    ("notes.txt", b"hello world\n", "txt"),
    ("Notes.TXT", b"hello", "txt"),
    ("a.md", b"# Title\n\nText", "md"),
    ("page.html", b"<html><body>hi</body></html>", "html"),
    ("page.HTM", b"<p>hi</p>", "html"),
    ("accents.txt", "héllo wörld ✓".encode(), "txt"),
    ("latin1.txt", "caf\xe9 cr\xe8me br\xfbl\xe9e\r\n".encode("latin-1"), "txt"),  # 8-bit text
    ("cp1252.md", b"\x93quoted\x94 \x80 5", "md"),
    ("bom.txt", "\ufeffhello".encode(), "txt"),
    ("utf16le.txt", "\ufeffhé llo".encode("utf-16-le"), "txt"),
    ("utf16be.txt", "\ufeffhé llo".encode("utf-16-be"), "txt"),
    ("utf32le.txt", "\ufeffhé llo".encode("utf-32-le"), "txt"),
    # was: refused by the api (NUL bytes); the worker reads it by its byte-order mark.
    ("utf32be.txt", "\ufeffhé llo".encode("utf-32-be"), "txt"),
    # was: refused by the api (NUL bytes); the worker recognises BOM-less UTF-16 by its NULs.
    ("utf16le-no-bom.txt", UTF16_TEXT.encode("utf-16-le"), "txt"),
    ("utf16be-no-bom.html", ("<p>" + UTF16_TEXT).encode("utf-16-be"), "html"),
    ("paper.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n", "pdf"),
    ("late.pdf", b"\x00" * 1000 + b"%PDF-1.7", "pdf"),  # a header within the first KB
    ("letter.docx", docx_bytes(), "docx"),
    ("LETTER.DOCX", docx_bytes(), "docx"),
    # was: refused by both although the worker reads them (the same main part, word/document.xml).
    ("macro.docm", docx_bytes(), "docx"),
    ("template.dotx", docx_bytes(), "docx"),
    ("macro-template.dotm", docx_bytes(), "docx"),
    # was: refused by both; BOM-less UTF-32 is now recognised by its NULs, as UTF-16 is.
    ("utf32le-no-bom.txt", UTF16_TEXT.encode("utf-32-le"), "txt"),
    ("utf32be-no-bom.md", UTF16_TEXT.encode("utf-32-be"), "md"),
    # The formats of issue 15: presentations, workbooks, tables as text, e-mail.
    ("deck.pptx", PPTX, "pptx"),
    ("macro-deck.pptm", PPTX, "pptx"),
    ("template.potx", PPTX, "pptx"),
    ("book.xlsx", XLSX, "xlsx"),
    ("macro-book.XLSM", XLSX, "xlsx"),
    ("template.xltx", XLSX, "xlsx"),
    ("table.csv", b"Region,Sales\nNorth,1200\n", "csv"),
    ("semicolons.csv", "Région;Ventes\nNord;1 200\n".encode("cp1252"), "csv"),
    ("tabs.tsv", b"Region\tSales\nNorth\t1200\n", "csv"),
    ("mail.eml", b"From: Ada <ada@example.org>\r\nSubject: Hi\r\n\r\nBody\r\n", "eml"),
    ("mbox-export.eml", b"From ada@example.org Mon Jan  1 00:00:00 2024\nSubject: Hi\n\nBody\n", "eml"),
    ("folded.eml", b"\r\nReceived: from x\r\n\tby y; Mon, 1 Jan 2024\r\nFrom: a@b\r\n\r\nBody", "eml"),
    # Images, by their signatures (their text is read by OCR).
    ("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "png"),
    ("Photo.JPG", b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
    ("photo.jpeg", b"\xff\xd8\xff\xe1\x00\x10Exif", "jpeg"),
    ("fax.tif", b"II*\x00\x08\x00\x00\x00", "tiff"),
    ("fax.tiff", b"MM\x00*\x00\x00\x00\x08", "tiff"),
    ("big.tiff", b"II+\x00\x08\x00\x00\x00", "tiff"),  # BigTIFF
]

REFUSED: list[tuple[str, bytes, str]] = [
    ("evil.txt", b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8, not_text(".txt")),
    ("image.md", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, not_text(".md")),
    # was: the worker trusted the name and read a PDF (or a zip) under a text extension as text.
    ("paper.txt", b"%PDF-1.4 ...", not_text(".txt")),
    ("archive.html", docx_bytes(), not_text(".html")),
    ("program.txt", b"MZ\x90\x00", not_text(".txt")),
    ("old.txt", CFB, not_text(".txt")),
    ("nul.txt", b"plain text\x00with a NUL", not_text(".txt")),
    ("noise.txt", bytes(range(1, 32)) * 20 + "caf\xe9".encode("latin-1"), not_text(".txt")),
    # BOM-less UTF-16 of control characters is binary data.
    ("controls.txt", "\x01\x02\x03 a".encode("utf-16-le") * 100, not_text(".txt")),
    # NULs in no UTF-32 pattern are binary data.
    ("utf32-of-controls.txt", "\x01\x02 a".encode("utf-32-le") * 100, not_text(".txt")),
    ("fake.pdf", b"just some text", NOT_A_PDF),
    ("too-late.pdf", b" " * 1024 + b"%PDF-1.7", NOT_A_PDF),
    ("fake.docx", b"just some text", NOT_A_WORD_DOCUMENT),
    # was: the api said "not a Word document" while the worker knew better: both say why now.
    ("old.docx", CFB, LEGACY_DOC),
    ("locked.docx", CFB + "EncryptionInfo".encode("utf-16-le"), ENCRYPTED_WORD),
    ("locked.docm", CFB + b"\x00" * HEAD_BYTES * 2 + "EncryptionInfo".encode("utf-16-le"), ENCRYPTED_WORD),
    ("zip.docx", b"PK\x03\x04" + b"\x00" * 100, NOT_A_WORD_DOCUMENT),  # a zip without the Word part
    ("sheet.docx", docx_bytes("xl/workbook.xml"), NOT_A_WORD_DOCUMENT),
    ("program.exe", b"MZ\x90\x00", unsupported(".exe")),
    # was: the worker guessed from the bytes when the name said nothing (%PDF-, a zip naming
    # word/, <html); the contract supports names, so a name without one is refused.
    ("noextension", b"hello", unsupported("no extension")),
    ("scan", b"%PDF-1.4 ...", unsupported("no extension")),
    ("page", b"<!DOCTYPE html><p>x", unsupported("no extension")),
    ("letter", docx_bytes(), unsupported("no extension")),
    # was: the worker read .text, .markdown and .xhtml; the contract lists five extensions.
    ("notes.text", b"hello", unsupported(".text")),
    ("notes.markdown", b"# hello", unsupported(".markdown")),
    ("page.xhtml", b"<html/>", unsupported(".xhtml")),
    # was: "Unsupported file type (.doc)"; now the sentence that tells the user what to do.
    ("old.doc", CFB, LEGACY_DOC),
    ("old.ppt", CFB, LEGACY_PPT),
    ("old.xls", CFB, LEGACY_XLS),
    ("old.pptx", CFB, LEGACY_PPT),
    ("old.xlsx", CFB, LEGACY_XLS),
    ("locked.pptx", CFB + "EncryptionInfo".encode("utf-16-le"), ENCRYPTED_PRESENTATION),
    (
        "locked.xlsm",
        CFB + b"\x00" * HEAD_BYTES * 2 + "EncryptionInfo".encode("utf-16-le"),
        ENCRYPTED_WORKBOOK,
    ),
    ("fake.pptx", b"just some text", NOT_A_PRESENTATION),
    ("fake.xlsx", b"just some text", NOT_A_WORKBOOK),
    # Each package names its own main part: a workbook renamed .pptx is not a presentation.
    ("book.pptx", XLSX, NOT_A_PRESENTATION),
    ("deck.xlsx", PPTX, NOT_A_WORKBOOK),
    ("letter.xlsx", docx_bytes(), NOT_A_WORKBOOK),
    ("deck.docx", PPTX, NOT_A_WORD_DOCUMENT),
    # A zip or a spreadsheet's binary under a text name is not text.
    ("book.csv", XLSX, not_text(".csv")),
    ("old.csv", CFB, not_text(".csv")),
    ("data.csv", bytes(range(1, 32)) * 20 + "caf\xe9".encode("latin-1"), not_text(".csv")),
    ("image.eml", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, not_text(".eml")),
    # Text, but no message: it must start with header lines.
    ("notes.eml", b"Dear Ada,\n\nsee you: soon.\n", NOT_AN_EMAIL),
    ("spaced.eml", b"Subject line: hi\n\nBody", NOT_AN_EMAIL),
    ("empty-name.eml", b": no name\n\nBody", NOT_AN_EMAIL),
    ("program.xls.exe", b"MZ\x90\x00", unsupported(".exe")),
    # An image's name must match its signature; an image is never text.
    ("scan.png", b"\xff\xd8\xff\xe0", "The file is named .png but is not a PNG image."),
    ("photo.jpg", b"\x89PNG\r\n\x1a\n", "The file is named .jpg but is not a JPEG image."),
    ("fax.tiff", b"%PDF-1.4", "The file is named .tiff but is not a TIFF image."),
    ("empty.png", b"", "The file is named .png but is not a PNG image."),
    ("fax.txt", b"II*\x00\x08\x00\x00\x00" + bytes(range(256)), not_text(".txt")),
    ("animation.gif", b"GIF89a", unsupported(".gif")),
]


@pytest.mark.parametrize(("name", "data", "expected"), ACCEPTED)
def test_supported_files_get_their_format(name: str, data: bytes, expected: Format) -> None:
    assert sniff(name, data[:HEAD_BYTES], len(data) <= HEAD_BYTES) == expected
    assert detect(name, data) == expected


@pytest.mark.parametrize(("name", "data", "message"), REFUSED)
def test_other_files_are_refused_with_a_reason(name: str, data: bytes, message: str) -> None:
    assert detect(name, data) == Unsupported(message)


def test_sniff_judges_the_head_and_the_scanner_the_word_part() -> None:
    """The api's streaming split of `detect`: a zip passes `sniff`, the scan decides."""
    assert sniff("zip.docx", b"PK\x03\x04" + b"\x00" * 100, True) == "docx"
    scanner = WordScanner()
    scanner.feed(b"PK\x03\x04" + b"\x00" * 100)
    assert scanner.refusal() == Unsupported(NOT_A_WORD_DOCUMENT)
    scanner.feed(b"word/docu")
    scanner.feed(b"ment.xml")
    assert scanner.refusal() is None


def test_only_the_head_is_judged() -> None:
    text = b"a" * HEAD_BYTES
    assert detect("x.txt", text + b"\x00" * 100) == "txt"  # what follows the head is not sniffed
    assert detect("x.docx", b"PK\x03\x04" + b"\x00" * (2 * HEAD_BYTES) + b"word/document.xml") == "docx"


def test_a_multibyte_character_cut_by_the_window_is_still_text() -> None:
    head = ("x" * (HEAD_BYTES - 1) + "é").encode()[:HEAD_BYTES]
    assert head.endswith(b"\xc3")
    assert sniff("x.txt", head, final=False) == "txt"
    assert sniff("x.txt", ("x" * 100 + "é").encode("utf-16-le")[:201], final=False) == "txt"


def test_the_stored_content_type_names_the_format() -> None:
    assert MIME_TYPES == {
        "txt": "text/plain",
        "md": "text/markdown",
        "html": "text/html",
        "pdf": "application/pdf",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "csv": "text/csv",
        "eml": "message/rfc822",
        "png": "image/png",
        "jpeg": "image/jpeg",
        "tiff": "image/tiff",
    }
    for fmt, mime in MIME_TYPES.items():
        assert format_of_content_type(mime) == fmt
    assert format_of_content_type("Text/Plain; charset=utf-8") == "txt"
    # was: the worker also took these, which the api never stores.
    assert format_of_content_type("text/x-markdown") is None
    assert format_of_content_type("application/xhtml+xml") is None
    assert format_of_content_type("image/gif") is None
    assert format_of_content_type("") is None
    assert SUPPORTED == ALL_EXTENSIONS


def test_one_scanner_for_every_office_format_as_the_api_streams_it() -> None:
    """`scanner_for` picks it by name; the main part's name may straddle two chunks."""
    assert scanner_for("a.txt") is None and scanner_for("a.csv") is None and scanner_for("a.eml") is None
    for name, member in (
        ("a.docx", b"word/document.xml"),
        ("b.PPTM", b"ppt/presentation.xml"),
        ("c.xltx", b"xl/workbook.xml"),
    ):
        scanner = scanner_for(name)
        assert isinstance(scanner, OoxmlScanner)
        scanner.feed(b"PK\x03\x04" + b"\x00" * 100)
        assert scanner.refusal() is not None
        scanner.feed(member[:7])
        scanner.feed(member[7:])
        assert scanner.refusal() is None, name
    # The old name still builds the Word scanner (rag_api.intake uses it).
    word = WordScanner()
    word.feed(b"PK\x03\x04ppt/presentation.xml")
    assert word.refusal() == Unsupported(NOT_A_WORD_DOCUMENT)
