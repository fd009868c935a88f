"""Which encoding a text or HTML file is in (rag_parse_worker.extract.charset), on real files.

fixtures/charsets/ holds sample texts from charset-normalizer's own test data (its sdist's
`data/` folder, version 3.4.4: Wikipedia excerpts under CC-BY-SA, and public-domain texts),
in the legacy encodings they were published in, and the UTF-8 originals of three of them.
Each decodes to exactly its UTF-8 twin, or to the encoding charset-normalizer's own tests
expect. The UTF-8 originals are also re-encoded here in the other code pages of their
language (KOI8-R, ISO-8859-2...), as files saved by older software are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_parse_worker.extract import extract
from rag_parse_worker.extract.charset import SAMPLE_BYTES, decode

CHARSETS = Path(__file__).parent / "fixtures" / "charsets"


def sample(name: str) -> bytes:
    return (CHARSETS / name).read_bytes()


def utf8(name: str) -> str:
    return sample(name).decode("utf-8")


@pytest.mark.parametrize(
    ("legacy", "original"),
    [
        ("sample-french-1.txt", "sample-french.txt"),
        ("sample-russian.txt", "sample-russian-2.txt"),
        ("sample-arabic-1.txt", "sample-arabic.txt"),
    ],
)
def test_a_legacy_file_decodes_to_exactly_its_utf8_original(legacy: str, original: str) -> None:
    assert decode(sample(legacy)).text == utf8(original)


@pytest.mark.parametrize(
    ("name", "encodings", "phrase"),
    [
        ("sample-chinese.txt", {"big5", "cp950", "big5hkscs"}, "維基大典"),
        ("sample-greek.txt", {"cp1253", "iso8859_7"}, "Η ελληνική αποτελεί τη μητρική γλώσσα"),
        ("sample-hebrew-2.txt", {"cp1255", "iso8859_8"}, "אין כמעט ניבים אזוריים עבריים"),
        ("sample-korean.txt", {"cp949", "euc_kr"}, "역사적 예수 연구자들은"),
        ("sample-turkish.txt", {"cp1254", "iso8859_9"}, "İstanbul, Türkiye'nin en kalabalık"),
    ],
)
def test_a_legacy_file_without_original_decodes_in_its_encoding(
    name: str, encodings: set[str], phrase: str
) -> None:
    decoded = decode(sample(name))
    assert decoded.encoding in encodings and decoded.how == "detected"
    assert phrase in decoded.text
    assert "\ufffd" not in decoded.text


@pytest.mark.parametrize(
    ("original", "encoding"),
    [
        ("sample-russian-3.txt", "cp1251"),
        ("sample-russian-3.txt", "koi8_r"),
        ("sample-russian-2.txt", "cp866"),
        ("sample-bulgarian.txt", "cp1251"),
        ("sample-polish.txt", "cp1250"),
        ("sample-polish.txt", "iso8859_2"),
        ("sample-arabic.txt", "cp1256"),
        ("sample-french.txt", "cp1252"),
    ],
)
def test_utf8_originals_saved_in_a_legacy_code_page_decode_back(original: str, encoding: str) -> None:
    text = utf8(original).removeprefix("\ufeff")
    # Characters the code page cannot hold are dropped, as a "save as" would drop them.
    legacy = text.encode(encoding, errors="ignore")
    assert decode(legacy).text == legacy.decode(encoding)


def test_utf8_ascii_and_boms_come_before_any_detection() -> None:
    text = utf8("sample-russian-3.txt")
    assert decode(text.encode("utf-8")).how == "utf-8"
    assert decode(b"plain").how == "ascii"
    assert decode(b"\xef\xbb\xbf" + text.encode("utf-8")).text == text
    assert decode("\ufeff".encode("utf-16-le") + text.encode("utf-16-le")).text == text


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_bom_less_utf16_with_too_few_nuls_for_the_nul_rule_is_detected(codec: str) -> None:
    """CJK in UTF-16 has NULs only in its ASCII parts: detection recognises it."""
    text = sample("sample-chinese.txt").decode("big5")
    assert decode(text.encode(codec)).text == text


def test_short_western_texts_are_windows_1252_not_a_lookalike_code_page() -> None:
    """Detection on a few accented letters is a coin toss between cp1250/1252/1257."""
    for text in [
        "Café crème brûlée",
        "“Naïve” résumé – done.",
        "Grüße aus München",
        "Ñandú y pingüino",
        "€ 5",
    ]:
        assert decode(text.encode("cp1252")).text == text


def test_a_large_file_is_detected_from_a_sample_and_decoded_whole() -> None:
    line = utf8("sample-russian-3.txt").replace("\n", " ").encode("cp1251", errors="ignore") + b"\n"
    legacy = line * (2 * SAMPLE_BYTES // len(line) + 1)
    assert decode(legacy).text == legacy.decode("cp1251")


HTML_RUSSIAN = "<p>Москва - столица России</p>"


@pytest.mark.parametrize(
    ("declared", "encoding"),
    [
        ("windows-1251", "cp1251"),  # the truth
        ("utf-8", "cp1251"),  # a lie the bytes contradict (invalid UTF-8): detection
        ("shift_jis", "utf-8"),  # a lie: the bytes are valid UTF-8
        ("iso-8859-1", "utf-8"),  # a lie: the bytes are valid UTF-8
        ("koi8-r", "koi8_r"),  # the truth
        ("x-no-such-charset", "cp1251"),  # unknown label: detection
    ],
)
def test_an_html_page_is_decoded_by_its_meta_charset_only_when_the_bytes_agree(
    declared: str, encoding: str
) -> None:
    page = f'<html><head><meta charset="{declared}"><title>t</title></head><body>{HTML_RUSSIAN * 20}</body></html>'
    text = extract(page.encode(encoding), "page.html", "text/html").text
    assert "Москва - столица России" in text
    assert "\ufffd" not in text
