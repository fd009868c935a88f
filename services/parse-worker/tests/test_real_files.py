"""The new formats on real files from public parser test suites (fixtures/pptx, xlsx, eml; see
each folder's NOTICE.md), with the text a reader of each file expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_parse_worker.extract import PAGE_SEPARATOR, NoTextFound, UnsupportedFormat, extract

FIXTURES = Path(__file__).parent / "fixtures"


def text_of(folder: str, name: str) -> str:
    return extract((FIXTURES / folder / name).read_bytes(), name, "").text


@pytest.mark.parametrize(
    ("name", "pages"),
    [
        ("txt-text.pptx", ["Foo Bar\nBaz Zoo\n1\nyahoo.com\n\nabc\na\nb\nc", "Text run in table cell"]),
        (
            "tbl-cell.pptx",
            [
                "having custom margins\tvert anchor is inherited\tvert anchor is top\tvert anchor is bottom\n"
                "unladen swallows",
                "merged cell\n\nmerged cell",
                "a\tb\tc\nd\te\tf\ng\th\ti",
            ],
        ),
        # The notes page's slide number ("1") is furniture; the slide itself is blank.
        ("sld-notes.pptx", ["Notes", ""]),
    ],
)
def test_python_pptx_presentations(name: str, pages: list[str]) -> None:
    result = extract((FIXTURES / "pptx" / name).read_bytes(), name, "")
    assert result.text.split(PAGE_SEPARATOR) == pages
    assert result.page_count == len(pages)


def test_a_presentation_of_shapes_without_text_says_so() -> None:
    with pytest.raises(NoTextFound):
        text_of("pptx", "shp-groupshape.pptx")


def test_excel_chart_data_workbooks() -> None:
    assert text_of("xlsx", "chart-dates.xlsx") == (
        "Sheet1 · columns: Series 1\n"
        "Sheet1 · row 2: A: 1969-01-01; Series 1: 4.3\n"
        "Sheet1 · row 3: A: 1969-01-02; Series 1: 2.5\n"
        "Sheet1 · row 4: A: 1969-01-12; Series 1: 3.5\n"
        "Sheet1 · row 5: A: 1969-01-20; Series 1: 4.5\n"
        "Sheet1 · row 6: A: 1969-01-30; Series 1: 3.6\n"
        "Sheet1 · row 7: A: 1969-02-10; Series 1: 15\n"
        "Sheet1 · row 8: A: 1969-02-20; Series 1: 17"
    )
    assert text_of("xlsx", "chart-bubbles.xlsx") == (
        "Sheet1 · columns: X-Values; Y-Value 1; Size 1\n"
        "Sheet1 · row 2: X-Values: 0.7; Y-Value 1: 2.7; Size 1: 10\n"
        "Sheet1 · row 3: X-Values: 1.8; Y-Value 1: 3.2; Size 1: 4\n"
        "Sheet1 · row 4: X-Values: 2.6; Y-Value 1: -3.8; Size 1: 8\n"
        "Sheet1 · row 7: Y-Value 1: To update the chart, enter data into this table. "
        "The data is automatically saved in the chart."
    )


def test_cpython_email_messages() -> None:
    assert text_of("eml", "gif-attachment.eml") == (
        "From: Barry <barry@digicool.com>\nTo: Dingus Lovers <cravindogs@cravindogs.com>\n"
        "Date: Fri, 20 Apr 2001 19:35:02 -0400\nSubject: Here is your dingus fish\n\n"
        "Hi there,\n\nThis is the dingus fish.\n\n"
        "Attachment: dingusfish.gif (not read: .gif is not a supported type)"
    )
    assert text_of("eml", "signed.eml") == (
        "From: foo@bar.baz\nTo: baz@bar.foo\nSubject: test\n\nThis is the signed contents.\n\n"
        "Attachment: signature.asc (not read: .asc is not a supported type)"
    )
    assert text_of("eml", "nested.eml") == (
        "From: aperson@dom.ain\n\nAttachment: message 1.eml\n\nFrom: cc@dd.org\nTo: aa@bb.org\nSubject: ee\n\n"
        "message 1\n\nAttachment: message 2.eml\n\nFrom: cc@dd.org\nTo: aa@bb.org\nSubject: ee\n\nmessage 2"
    )


def test_a_mailing_list_digest_reads_every_message_in_it() -> None:
    text = text_of("eml", "digest.eml")
    assert text.startswith(
        "From: ppp-request@zzz.org\nTo: ppp@zzz.org\nDate: Fri, 20 Apr 2001 20:18:00 -0400\n"
        "Subject: Ppp digest, Vol 1 #2 - 5 msgs\n\nSend Ppp mailing list submissions to\n\tppp@zzz.org"
    )
    assert "Attachment: attachment 1.txt\n\nToday's Topics:\n\n1. testing #1 (Barry A. Warsaw)" in text
    for n in (1, 3, 4, 5):
        assert f"Subject: [Ppp] testing #{n}\n\nhello" in text
    assert text.count("\n\nhello") == 5
    assert text.endswith(
        "Attachment: attachment 3.txt\n\n_______________________________________________\n"
        "Ppp mailing list\nPpp@zzz.org\nhttp://www.zzz.org/mailman/listinfo/ppp"
    )


def test_a_digest_body_without_headers_is_no_message() -> None:
    with pytest.raises(UnsupportedFormat) as info:
        text_of("eml", "no-headers.eml")
    assert "not an e-mail message" in info.value.message
