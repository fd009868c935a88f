"""A .docx is more than its body: footnotes, endnotes, comments, headers and footers
(rag_parse_worker.extract.docx). Real files from python-docx's test suite (fixtures/docx/),
then built ones for what a hostile document can do with its relationships.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_parse_worker.extract import LimitExceeded, Limits, extract

from .builders import document_xml, make_docx, para, part_xml

DOCX = Path(__file__).parent / "fixtures" / "docx"
TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def text_of(data: bytes, limits: Limits | None = None) -> str:
    return extract(data, "x.docx", TYPE, limits).text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "comments-rich-para.docx",
            "Document text\n\nSome text worthy of note.\n\nOther document text.\n\nOther text worthy of note."
            "\n\nParagraph 5\n\nParagraph 6\n\nParagraph 7"
            # the comments, after the body
            "\n\nText with hyperlink https://google.com embedded.\n\nText with inline image in the middle."
            "\n\nText with character style.\n\nParagraph with Heading 2 paragraph style.",
        ),
        (
            "hdr-header-footer.docx",
            "section with header\n\nsection without header of its own.\n\nHeader for section-1\n\nFooter for section 1",
        ),
        ("doc-odd-even-hdrs.docx", "First Page.\n\nSecond Page.\n\nOdd page header.\n\nEven page header."),
        ("python-docx-test.docx", "python-docx was here!\n\npython-docx was here too!"),
    ],
)
def test_real_documents_give_body_then_comments_headers_and_footers(name: str, expected: str) -> None:
    assert text_of((DOCX / name).read_bytes()) == expected


FOOTNOTES = part_xml(
    "footnotes",
    '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
    '<w:footnote w:id="1">' + para("A footnote with the source.") + "</w:footnote>",
)
ENDNOTES = part_xml("endnotes", '<w:endnote w:id="1">' + para("An endnote.") + "</w:endnote>")
COMMENTS = part_xml(
    "comments", '<w:comment w:id="0" w:author="Ada">' + para("Check this figure.") + "</w:comment>"
)
HEADER = part_xml("hdr", para("ACME Confidential"))


def test_every_kind_of_part_in_a_fixed_order_and_a_repeated_header_once() -> None:
    data = make_docx(
        document_xml(para("The body.")),
        parts={
            "word/header1.xml": HEADER,
            "word/header2.xml": HEADER,  # the same header in another section
            "word/comments.xml": COMMENTS,
            "word/footnotes.xml": FOOTNOTES,
            "word/endnotes.xml": ENDNOTES,
            "word/footer1.xml": part_xml("ftr", para("Page footer")),
        },
        relationships=[
            ("header", "header1.xml"),
            ("footer", "footer1.xml"),
            ("header", "header2.xml"),
            ("comments", "comments.xml"),
            ("endnotes", "endnotes.xml"),
            ("footnotes", "/word/footnotes.xml"),  # absolute targets are allowed
        ],
    )
    assert text_of(data) == (
        "The body.\n\nA footnote with the source.\n\nAn endnote.\n\nCheck this figure."
        "\n\nACME Confidential\n\nPage footer"
    )


def test_relationships_that_lead_nowhere_or_elsewhere_are_ignored() -> None:
    data = make_docx(
        document_xml(para("The body.")),
        parts={
            "secret.xml": part_xml("hdr", para("outside word/")),
            "word/styles.xml": part_xml("styles", ""),
        },
        relationships=[
            ("header", "missing.xml"),  # dangling
            ("header", "../../../etc/passwd"),  # outside the package
            ("footer", "document.xml"),  # the body again
            ("styles", "styles.xml"),  # not a text part
        ],
    )
    assert text_of(data) == "The body."


def test_the_uncompressed_cap_counts_all_parts_together() -> None:
    """Each header is under MAX_DOCX_XML_BYTES; together they are over it."""
    parts = {f"word/header{i}.xml": part_xml("hdr", para(chr(97 + i) * 40_000)) for i in range(10)}
    data = make_docx(
        document_xml(para("The body.")),
        parts=parts,
        relationships=[("header", f"header{i}.xml") for i in range(10)],
    )
    assert "The body." in text_of(data, Limits(max_docx_xml_bytes=1_000_000))
    with pytest.raises(LimitExceeded):
        text_of(data, Limits(max_docx_xml_bytes=200_000))
