"""CSV/TSV tables and e-mail messages: the text a reader expects, and hostile files refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag_core.formats import MIME_TYPES
from rag_parse_worker.extract import LimitExceeded, Limits, UnreadableText, extract

from .builders import SAMPLE_XLSX_SHEETS, document_xml, make_docx, make_eml, make_xlsx, para

FIXTURES = Path(__file__).parent / "fixtures"

# ------------------------------------------------------------------------- csv


def test_comma_table_with_a_header_and_quoted_fields() -> None:
    data = b'Region,Sales,Note\r\nNorth,"1,200","two\r\nlines"\r\n,,\r\nSouth,900,\r\n'
    assert extract(data, "t.csv", MIME_TYPES["csv"]).text == (
        "columns: Region; Sales; Note\nrow 2: Region: North; Sales: 1,200; Note: two lines\nrow 4: Region: South; Sales: 900"
    )


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("semi.csv", "Région;Ventes\nNord;1 200,5\nSud;900\n".encode("cp1252")),
        ("tabs.tsv", "Région\tVentes\nNord\t1 200,5\nSud\t900\n".encode()),
        ("tabs.csv", "Région\tVentes\nNord\t1 200,5\nSud\t900\n".encode("utf-16")),
        ("pipes.csv", "Région|Ventes\nNord|1 200,5\nSud|900\n".encode()),
    ],
)
def test_the_delimiter_and_the_charset_are_recognised(name: str, data: bytes) -> None:
    assert extract(data, name, "").text == (
        "columns: Région; Ventes\nrow 2: Région: Nord; Ventes: 1 200,5\nrow 3: Région: Sud; Ventes: 900"
    )


def test_a_table_of_numbers_has_no_header_and_is_not_garbage() -> None:
    data = "".join(f"{i},{i * 2.5},{-i}\n" for i in range(3000)).encode()
    text = extract(data, "n.csv", "").text
    assert text.startswith("row 1: 0; 0.0; 0\nrow 2: 1; 2.5; -1\n")
    assert text.count("\n") == 2999


def test_garbage_in_a_table_is_still_refused() -> None:
    data = "\n".join(["\ue000\ue001,\ue002\ue003,\ufffd\ufffd"] * 200).encode()
    with pytest.raises(UnreadableText) as info:
        extract(data, "junk.csv", "")
    assert info.value.message.startswith("The table's text could not be decoded")


def test_an_unclosed_quote_swallowing_the_file_is_refused() -> None:
    data = b'a,b\n1,"' + b"x" * (2 * 1024 * 1024) + b"\n"
    with pytest.raises(LimitExceeded) as info:
        extract(data, "q.csv", "")
    assert (
        info.value.message
        == "The CSV file has a field longer than 1 MB (an unclosed quote?), so it was not processed."
    )


def test_a_long_cell_is_cut_and_rows_are_bounded() -> None:
    text = extract(b"Note\n" + b"y" * 50_000 + b"\n", "c.csv", "", Limits(max_cell_chars=100)).text
    assert text == "columns: Note\nrow 2: Note: " + "y" * 100 + "…"
    million = b"1,2\n" * 1_000_000
    started = time.process_time()
    with pytest.raises(LimitExceeded) as info:
        extract(million, "m.csv", "")
    assert info.value.message == "The CSV file has more than 100000 rows, the limit."
    assert time.process_time() - started < 30
    with pytest.raises(LimitExceeded) as wide:
        extract(",".join(["7"] * 2000).encode(), "w.csv", "")
    assert wide.value.message == "The CSV file has a row with more than 1000 cells, the limit."


# ------------------------------------------------------------------------- eml


def test_the_committed_csv_and_eml_fixtures() -> None:
    assert extract((FIXTURES / "inventory.csv").read_bytes(), "inventory.csv", "").text == (
        "columns: Item; Warehouse; Count\n"
        "row 2: Item: Oak barrels aged in the Bordeaux cellar; Warehouse: Bordeaux; Count: 48\n"
        "row 3: Item: Clay amphorae; Warehouse: Marseille; Count: 12"
    )
    memo = extract((FIXTURES / "memo.eml").read_bytes(), "memo.eml", "").text
    assert memo == (
        HEADERS.replace("Quarterly figures", "Harvest")
        + "\n\nCharles,\n\nthe orchard harvest of quinces doubled this autumn.\n\nAda"
        + "\n\nAttachment: inventory.csv\n\ncolumns: Item; Warehouse; Count\n"
        + "row 2: Item: Oak barrels aged in the Bordeaux cellar; Warehouse: Bordeaux; Count: 48\n"
        + "row 3: Item: Clay amphorae; Warehouse: Marseille; Count: 12"
        + "\n\nAttachment: logo.png (not read: the file is named .png but is not a PNG image)"
    )


HEADERS = (
    "From: Ada Lovelace <ada@example.org>\nTo: Charles Babbage <charles@example.org>\n"
    "Date: Mon, 01 Jan 2024 09:30:00 +0000\nSubject: Quarterly figures"
)


def test_headers_then_the_plain_body() -> None:
    result = extract(make_eml("Dear Charles,\n\nthe engine is ready.\n"), "m.eml", MIME_TYPES["eml"])
    assert result.format == "eml" and result.page_count is None
    assert result.text == HEADERS + "\n\nDear Charles,\n\nthe engine is ready."


def test_the_plain_part_wins_over_html_and_html_alone_is_read_as_html() -> None:
    both = make_eml("Plain words here.", html="<p>HTML <b>words</b></p>")
    assert extract(both, "b.eml", "").text == HEADERS + "\n\nPlain words here."
    html_only = make_eml(
        "", html="<html><head><style>p{}</style></head><body><p>Only <b>HTML</b> here.</p></body></html>"
    )
    assert extract(html_only, "h.eml", "").text == HEADERS + "\n\nOnly HTML here."


def test_a_declared_legacy_charset_is_used_when_the_bytes_agree() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: =?iso-8859-1?q?Caf=E9?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"Cr\xe8me br\xfbl\xe9e pour tous.\r\n"
    )
    assert extract(raw, "l.eml", "").text == "From: a@example.org\nSubject: Café\n\nCrème brûlée pour tous."


def test_attachments_of_supported_types_are_read_and_the_others_named() -> None:
    docx = make_docx(document_xml(para("The attached report says hello.")))
    message = make_eml(
        "See the attachments.",
        attachments=[
            ("report.docx", "application/octet-stream", docx),
            ("sales.xlsx", "application/vnd.ms-excel", make_xlsx(SAMPLE_XLSX_SHEETS[1:2])),
            ("table.csv", "text/csv", b"City,People\nLyon,500000\n"),
            ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
            ("broken.docx", "application/octet-stream", b"PK\x03\x04 broken word/document.xml"),
        ],
    )
    assert extract(message, "a.eml", "").text == (
        HEADERS
        + "\n\nSee the attachments."
        + "\n\nAttachment: report.docx\n\nThe attached report says hello."
        + "\n\nAttachment: sales.xlsx\n\nFigures · row 1: 1; 2; 3\nFigures · row 2: 4; 5; 6.25"
        + "\n\nAttachment: table.csv\n\ncolumns: City; People\nrow 2: City: Lyon; People: 500000"
        + "\n\nAttachment: photo.png (not read: the file is an image: reading its text needs OCR, which is not"
        + " available on this worker)"
        + "\n\nAttachment: broken.docx (not read: the file is not a valid Word document (.docx))"
    )


def test_an_attached_message_is_read_one_level_deep() -> None:
    innermost = make_eml("Innermost words.", subject="Level two")
    inner = make_eml(
        "Inner words.", subject="Level one", attachments=[("deeper.eml", "message/rfc822", innermost)]
    )
    outer = make_eml("Outer words.", attachments=[("forwarded.eml", "message/rfc822", inner)])
    text = extract(outer, "o.eml", "").text
    assert "Attachment: forwarded.eml\n\nFrom: Ada Lovelace" in text
    assert "Subject: Level one\n\nInner words." in text
    assert (
        "Attachment: deeper.eml (not read: an attached message more than 1 level(s) deep is only named)"
        in text
    )
    assert "Innermost words." not in text
    # The same message as an .eml file (application/octet-stream) is read the same way.
    as_file = make_eml("Outer words.", attachments=[("fw.eml", "application/octet-stream", inner)])
    assert "Subject: Level one\n\nInner words." in extract(as_file, "f.eml", "").text


def test_deep_recursion_of_attached_messages_is_bounded() -> None:
    message = make_eml("Bottom.")
    for level in range(30):
        message = make_eml(
            f"Level {level}.", attachments=[(f"l{level}.eml", "application/octet-stream", message)]
        )
    started = time.process_time()
    text = extract(message, "deep.eml", "").text
    assert "Level 29." in text and "Level 28." in text and "Level 27." not in text
    assert time.process_time() - started < 10


def test_thousands_of_attachments_are_refused() -> None:
    parts = [(f"n{i}.txt", "text/plain", b"note") for i in range(1500)]
    with pytest.raises(LimitExceeded) as info:
        extract(make_eml("Many.", attachments=parts), "many.eml", "")
    assert info.value.message == "The e-mail has more than 100 attachments, the limit."


def test_deeply_nested_multiparts_and_giant_headers_are_refused_before_parsing() -> None:
    depth = 5000
    opening = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    closing = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(depth)))
    nested = ("From: a@example.org\r\n" + opening + "Content-Type: text/plain\r\n\r\nhi" + closing).encode()
    started = time.process_time()
    with pytest.raises(LimitExceeded) as info:
        extract(nested, "nest.eml", "")
    assert "more than 200 nested parts" in info.value.message
    long_header = (
        b"From: a@example.org\r\nContent-Type: text/plain; x=" + b"x" * 100_000 + b"\r\n\r\nBody\r\n"
    )
    with pytest.raises(LimitExceeded) as header:
        extract(long_header, "h.eml", "")
    assert (
        header.value.message == "The e-mail has a Content- header longer than 16 KB, so it was not processed."
    )
    parts = b'From: a@b\r\nContent-Type: multipart/mixed; boundary="q"\r\n\r\n' + b"--q\r\n\r\nx\r\n" * 20_000
    with pytest.raises(LimitExceeded) as many:
        extract(parts, "parts.eml", "")
    assert many.value.message == "The e-mail has more than 10000 MIME parts, so it was not processed."
    assert time.process_time() - started < 10


def test_a_mailing_list_sized_to_header_is_cut_not_refused() -> None:
    recipients = ", ".join(f"user{i}@example.org" for i in range(20_000))
    raw = f"From: a@example.org\r\nTo: {recipients}\r\nSubject: News\r\n\r\nHello list.\r\n".encode()
    started = time.process_time()
    text = extract(raw, "list.eml", "").text
    assert time.process_time() - started < 10
    to_line = text.split("\n")[1]
    assert to_line.startswith("To: user0@example.org, user1@example.org") and to_line.endswith(
        "@example.org …"
    )
    assert len(to_line) < 4200
    assert text.endswith("Subject: News\n\nHello list.")


def test_a_garbage_attachment_is_named_not_indexed() -> None:
    junk = ("\ue000\ue001\ue002 " * 2000).encode()
    text = extract(
        make_eml("Body words are fine.", attachments=[("junk.txt", "text/plain", junk)]), "g.eml", ""
    ).text
    assert text.endswith("Attachment: junk.txt (not read: its text is garbled)")
