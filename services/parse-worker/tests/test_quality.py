"""The garbage detector (rag_parse_worker.extract.quality): real garbage is refused with a
readable permanent error; real text, however unusual, never is."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag_parse_worker.extract import UNREADABLE, UnreadableText, extract
from rag_parse_worker.extract.quality import MIN_VISIBLE, SAMPLES, SLICE, measure

FIXTURES = Path(__file__).parent / "fixtures"
PROSE = (
    "The committee met on Tuesday to review the budget for the coming year. After a long "
    "discussion the members agreed to fund the new library wing and to postpone the road works. "
)


def test_a_scan_with_a_garbage_text_layer_is_refused_not_indexed() -> None:
    """pypdf's issue-301.pdf: what PDFium reads of it is `:., dP . . i, ...`."""
    with pytest.raises(UnreadableText) as info:
        extract((FIXTURES / "pdf" / "issue-301.pdf").read_bytes(), "scan.pdf", "application/pdf")
    assert info.value.message == UNREADABLE["pdf"]
    assert info.value.code == "unreadable_text"


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("crazyones.pdf", "Heres to the crazy ones. The misfits. The rebels."),
        ("multilang.pdf", "Привет, мир"),
        ("multilang.pdf", "こんにちは世界"),
        ("multilang.pdf", "مرحبا بالعالم"),
        ("superscript-pdftex.pdf", "x ∈ {"),
    ],
)
def test_real_pdfs_in_many_scripts_and_mathematics_are_text(name: str, phrase: str) -> None:
    assert phrase in extract((FIXTURES / "pdf" / name).read_bytes(), name, "application/pdf").text


@pytest.mark.parametrize(
    "text",
    [
        PROSE * 3,
        "日本語の文章は単語の間に空白を入れずに書きます。" * 10,  # no spaces at all
        "\n".join(f"{i},{i * 3.5:.2f},{i * 7}" for i in range(200)),  # a table of figures, no letters
        "def add(a: int, b: int) -> int:\n    return a + b\n" * 20,  # source code
        "| Name | Qty |\n|---|---|\n| Apples | 3 |\n| Pears | 12 |\n" * 10,  # a Markdown table
        "x² + y² = z², ∀x ∈ ℝ: f(x) ≥ 0. " * 10,  # mathematics
        "∂f/∂x = ∑ aᵢ·xᵢ ≤ ∫ g(t) dt; (∇ × F) = 0. " * 10,  # more symbols than letters
        "foo 1",  # too short to judge
        PROSE * 3 + "\ufffd" * 2,  # a couple of damaged bytes in a good text
        # Scripts whose vowel signs are combining marks (were refused: "letters outside words").
        "বাংলাদেশের রাজধানী ঢাকা শহরে আজ সকালে বৃষ্টি হয়েছে এবং মানুষ ছাতা নিয়ে বাইরে বের হয়েছেন। " * 3,
        "भारत की राजधानी नई दिल्ली है और यहाँ बहुत सारे लोग रहते हैं। आज मौसम बहुत अच्छा है। " * 3,
        "தமிழ்நாட்டின் தலைநகரம் சென்னை ஆகும். இங்கு பல கோயில்கள் உள்ளன. " * 4,
        "ประเทศไทยมีกรุงเทพมหานครเป็นเมืองหลวง และมีประชากรมากกว่าหกสิบล้านคน " * 3,
        "cafe\u0301 cre\u0300me brûle\u0301e, a\u0300 la carte; " * 10,  # accents as separate marks (NFD)
    ],
)
def test_unusual_but_real_text_is_never_judged_garbage(text: str) -> None:
    assert measure(text).problem() is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Caf\ufffd cr\ufffdme br\ufffdl\ufffde " * 20, "replacement characters"),
        ("\ue001\ue002\ue003\ue004 \ue005\ue006 word " * 20, "private-use characters"),
        ("/g23/g45/g12 /g7/g88 " * 20, "glyph names"),
        ("(cid:17)(cid:4)(cid:22) (cid:9) " * 20, "glyph names"),
        (":., dP . . i, .. ? .i ' » e. : .. rP . Nsr • " * 10, "few letters or digits"),
        ("a b c d e f g h i j k l m n o p q r s t u v w x y z " * 10, "letters outside words"),
    ],
)
def test_garbage_of_each_kind_is_recognised(text: str, problem: str) -> None:
    assert measure(text).problem() == problem


@pytest.mark.parametrize(("fmt", "name"), [("txt", "x.txt"), ("html", "x.html"), ("md", "x.md")])
def test_garbage_text_files_fail_with_their_formats_message(fmt: str, name: str) -> None:
    garbage = ("\ue001\ue002\ue003 \ue004\ue005 " * 40).encode()
    with pytest.raises(UnreadableText) as info:
        extract(garbage, name, "")
    assert info.value.message == UNREADABLE[fmt]  # type: ignore[index]


def test_the_measure_is_bounded_by_its_sample_and_sees_all_of_a_long_text() -> None:
    """64 slices spread over the text: garbage that is most of a long text is found, a good
    text with one bad stretch is not condemned, and the cost does not grow with the size."""
    good = PROSE * (SAMPLES * SLICE // len(PROSE) * 4)
    rng = random.Random(7)
    noise = "".join(rng.choice(":.,;'•» ") for _ in range(len(good)))
    assert measure(good[: len(good) // 10] + noise).problem() is not None
    assert measure(good + noise[: SLICE * 2]).problem() is None
    assert measure(good).visible <= SAMPLES * SLICE
    assert MIN_VISIBLE < SLICE
