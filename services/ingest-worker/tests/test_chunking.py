"""Chunker invariants: offsets, overlap, structure, pages, speed, no empty chunks."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from rag_ingest_worker.chunking import Chunk, chunk_text, page_starts_from_form_feeds

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def prose(rng: random.Random, sentences: int) -> str:
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))).capitalize() + "."
        for _ in range(sentences)
    )


def check_invariants(text: str, chunks: list[Chunk], target: int = 800) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(text))
    for c in chunks:
        assert c.text == text[c.char_start : c.char_end]
        assert c.text and c.text == c.text.strip(), "no empty chunk, no surrounding whitespace"
        assert len(c.text) <= target
        covered[c.char_start : c.char_end] = b"\x01" * (c.char_end - c.char_start)
    for a, b in itertools.pairwise(chunks):
        assert a.char_start < b.char_start and a.char_end < b.char_end, "chunks move forward"
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"text not in any chunk at {missing[:5]}"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\f \n"])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert chunk_text(text) == []


def test_short_text_is_one_chunk_without_surrounding_whitespace() -> None:
    text = "\n\n  Hello world. Short text.  \n"
    [chunk] = chunk_text(text)
    assert (chunk.text, chunk.char_start, chunk.char_end, chunk.page) == (
        "Hello world. Short text.",
        4,
        28,
        None,
    )


def test_long_text_packs_sentences_with_overlap_and_never_cuts_a_word() -> None:
    text = prose(random.Random(1), 200)
    chunks = chunk_text(text, target_chars=800, overlap_chars=120)
    check_invariants(text, chunks)
    assert len(chunks) > 10
    for c in chunks:
        assert c.char_start == 0 or text[c.char_start - 1].isspace(), "starts at a word"
        assert c.char_end == len(text) or text[c.char_end].isspace(), "ends at a word"
        assert c.text.endswith("."), "one paragraph of sentences: chunks end at sentence ends"
    assert all(len(c.text) >= 400 for c in chunks[:-1]), "packed, not one sentence per chunk"
    overlaps = [a.char_end - b.char_start for a, b in itertools.pairwise(chunks)]
    assert all(0 < o <= 120 for o in overlaps), overlaps


def test_overlap_can_be_turned_off() -> None:
    text = prose(random.Random(2), 100)
    chunks = chunk_text(text, overlap_chars=0)
    check_invariants(text, chunks)
    assert all(a.char_end <= b.char_start for a, b in itertools.pairwise(chunks))


def test_headings_start_new_chunks_and_give_context() -> None:
    rng = random.Random(3)
    text = (
        f"# Guide\n\n{prose(rng, 3)}\n\n## Install\n\n{prose(rng, 12)}\n\n{prose(rng, 12)}\n\n"
        f"### On Linux\n\n{prose(rng, 6)}\n\n## Use\n\n{prose(rng, 8)}\n"
    )
    chunks = chunk_text(text)
    check_invariants(text, chunks)
    starts = [c.text.split("\n", 1)[0] for c in chunks if c.text.startswith("#")]
    assert "### On Linux" in starts and "## Use" in starts
    by_heading = {c.heading for c in chunks}
    assert {"Guide", "Guide > Install", "Guide > Install > On Linux", "Guide > Use"} <= by_heading
    inside = next(c for c in chunks if c.heading == "Guide > Install" and not c.text.startswith("#"))
    assert inside.embedding_text == f"Guide > Install\n{inside.text}"
    # A heading line never ends a chunk: it stays with the section it introduces.
    assert all(not c.text.rsplit("\n", 1)[-1].startswith("#") for c in chunks)
    # No chunk runs from one section into the next once the first has some substance.
    use = text.index("## Use")
    assert all(not (c.char_start < use < c.char_end) for c in chunks)


def test_a_heading_after_a_short_section_moves_to_the_next_chunk() -> None:
    rng = random.Random(8)
    text = f"# Title\n\n{prose(rng, 1)}\n\n## Next\n\n{'word ' * 150}end."
    chunks = chunk_text(text)
    check_invariants(text, chunks)
    assert [c.text.split("\n", 1)[0] for c in chunks] == ["# Title", "## Next"]


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    rng = random.Random(4)
    paragraphs = [prose(rng, 3) for _ in range(20)]
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, overlap_chars=0)
    check_invariants(text, chunks)
    for c in chunks:
        assert text[c.char_start - 2 : c.char_start] in ("", "\n\n") or c.char_start == 0


def test_pages_from_form_feeds_and_from_explicit_starts() -> None:
    rng = random.Random(5)
    pages = [prose(rng, 15) for _ in range(3)]
    text = "\f".join(pages)
    assert page_starts_from_form_feeds(text) == [0, len(pages[0]) + 1, len(pages[0]) + len(pages[1]) + 2]
    chunks = chunk_text(text)
    check_invariants(text, chunks)
    for c in chunks:
        assert c.page == text.count("\f", 0, c.char_start) + 1
    assert {c.page for c in chunks} == {1, 2, 3}
    # Parser-given page starts win over form feeds.
    explicit = chunk_text(text, page_starts=[0, 10])
    assert all(c.page == (1 if c.char_start < 10 else 2) for c in explicit)


def test_a_giant_word_is_cut_at_the_limit_and_nothing_is_lost() -> None:
    text = "start " + "x" * 2000 + " end."
    chunks = chunk_text(text, target_chars=500, overlap_chars=50)
    check_invariants(text, chunks, target=500)
    assert (
        "".join(c.text for c in chunks if c.text.startswith("x") or c.text.endswith("x")).count("x") >= 2000
    )


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_text("text", target_chars=100, overlap_chars=100)


def test_random_documents_keep_every_invariant() -> None:
    rng = random.Random(6)
    alphabet = ["word", "Word.", "# Title", "## Sub", "\n", "\n\n", "\f", " ", "  ", "end!", "x" * 90, "\t"]
    for _ in range(300):
        text = " ".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        target = rng.choice([50, 120, 800])
        chunks = chunk_text(text, target_chars=target, overlap_chars=target // 7)
        check_invariants(text, chunks, target)


def test_300_pages_take_well_under_a_second_or_two() -> None:
    rng = random.Random(7)
    pages = [f"## Chapter {p}\n\n" + "\n\n".join(prose(rng, 8) for _ in range(9)) for p in range(300)]
    text = "\f".join(pages)
    assert len(text) > 1_400_000  # ~5 KB a page, as a dense PDF
    started = time.process_time()  # CPU time: other jobs on the machine do not count
    chunks = chunk_text(text)
    elapsed = time.process_time() - started
    assert elapsed < 2.0, elapsed
    assert chunks[-1].page == 300
    check_invariants(text, chunks)


@pytest.mark.parametrize(
    "text",
    ["x" * 1_500_000, "a\n" * 750_000, "word\n\n" * 250_000, "Short one. " * 140_000, "page\f" * 300_000],
    ids=["no-space", "newlines", "blank-lines", "tiny-sentences", "form-feeds"],
)
def test_pathological_inputs_stay_linear(text: str) -> None:
    started = time.process_time()
    chunks = chunk_text(text)
    assert time.process_time() - started < 4.0  # ~0.05-0.7 s on an idle machine
    assert chunks and all(c.text and c.text == text[c.char_start : c.char_end] for c in chunks)
