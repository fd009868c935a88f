"""The chunker is linear on every hostile shape: 1 MB of each, and the growth from 256 KB.

Before, a run of dots (no whitespace) or a heading line ending in a long run of spaces,
tabs or "#" before more text made the sentence and heading regexes quadratic: 16,000 dots
took 4 s and 300 KB about 25 minutes. The bounds are generous (CPU time, a loaded 2-core
machine); bench/pathological.py has the figures.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag_ingest_worker.chunking import chunk_text
from rag_testing.linear_time import MB, assert_linear

SHAPES: dict[str, Callable[[int], str]] = {
    "dots": lambda n: "." * n,
    "bangs-and-questions": lambda n: "!?" * (n // 2),
    "ellipses": lambda n: "…" * n,
    "cjk-stops": lambda n: "。！？" * (n // 3),
    "dot-then-closers": lambda n: ".)" + ")" * (n - 3) + "x",
    "dot-space": lambda n: ". " * (n // 2),
    "heading-hashes-then-text": lambda n: "# " + "#" * (n - 3) + "x",
    "heading-hash-spaces-then-text": lambda n: "# a" + " #" * (n // 2 - 2) + " x",
    "heading-tabs-then-text": lambda n: "# a" + " \t" * (n // 2 - 2) + "x",
    "hashes-only": lambda n: "#" * n,
    "many-headings": lambda n: "# h\n" * (n // 4),
    "one-long-line": lambda n: "x" * n,
    "whitespace": lambda n: " \t" * (n // 2 - 1) + "x",
    "newlines": lambda n: "\n" * (n - 1) + "x",
    "tiny-paragraphs": lambda n: "a.\n\n" * (n // 4),
    "form-feeds": lambda n: "p\f" * (n // 2),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_one_megabyte_of_each_hostile_shape_is_chunked_quickly_and_linearly(shape: str) -> None:
    text = SHAPES[shape](MB)
    assert all(c.text == text[c.char_start : c.char_end] for c in chunk_text(text))
    assert_linear(chunk_text, SHAPES[shape])


def test_headings_made_of_hostile_runs_keep_their_titles() -> None:
    [closed] = chunk_text("## Title ###   \t\n\nbody.")
    assert closed.heading == "Title"
    [tabbed] = chunk_text("# a" + " \t" * 10 + "b #\n\nbody.")
    assert tabbed.heading == "a" + " \t" * 10 + "b"
    [only_hashes] = chunk_text("# ####\n\nbody.")
    assert only_hashes.heading == "#"


def test_sentence_ends_inside_punctuation_runs_still_split_long_paragraphs() -> None:
    text = ("Word " * 30 + "... ") * 40  # one paragraph, sentences ending in an ellipsis
    chunks = chunk_text(text, target_chars=400, overlap_chars=60)
    assert len(chunks) > 5
    assert all(c.text.endswith("...") for c in chunks[:-1]), [c.text[-10:] for c in chunks]
    assert all(c.text == text[c.char_start : c.char_end] for c in chunks)
