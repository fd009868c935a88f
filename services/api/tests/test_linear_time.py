"""The api's own text paths are linear: upload file names and the extractive answerer.

They were already (names are cut in one pass; the answerer's ``\\w+`` and
``(?<=[.!?])\\s+`` cannot re-scan), and these tests keep them so: 1 MB of each hostile
shape within a generous CPU bound, and the growth from 128 KB well below quadratic.
Format sniffing is rag_core's: libs/core/tests/test_formats_linear_time.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from rag_api.answering.providers import NOTHING_FOUND, ExtractiveProvider
from rag_api.filenames import clean_filename
from rag_api.search import Hit
from rag_testing.linear_time import MB, assert_linear

SHAPES: dict[str, Callable[[int], str]] = {
    "dots": lambda n: "." * n,
    "bangs-and-questions": lambda n: "!?" * (n // 2),
    "dot-space": lambda n: ". " * (n // 2),
    "bang-newline": lambda n: "! \n" * (n // 3),
    "one-long-word": lambda n: "x" * n,
    "whitespace": lambda n: " \n\t" * (n // 3),
    "hashes": lambda n: "#" * n,
    "tiny-sentences": lambda n: "Topic one. " * (n // 11),
    "slashes": lambda n: "/\\" * (n // 2),
    "controls": lambda n: "\x01\u200b" * (n // 2),
}


def hit(text: str, n: int = 1) -> Hit:
    return Hit(chunk_id=n, document_id=uuid.uuid4(), filename="f.txt", ordinal=0, text=text, score=1.0)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_extractive_answer_is_linear_in_its_passages(shape: str) -> None:
    provider = ExtractiveProvider()
    make = SHAPES[shape]
    assert_linear(lambda text: provider.answer("topic " + text[:4000], [hit(text)]), make)


def test_the_extractive_answer_on_hostile_passages_still_quotes_or_says_nothing_found() -> None:
    provider = ExtractiveProvider()
    assert provider.answer("what is the topic?", [hit("." * MB)]) == NOTHING_FOUND
    answer = provider.answer("topic", [hit(". " * 1000 + "The topic is here. " + "!" * 10_000)])
    assert "The topic is here. [1]" in answer


@pytest.mark.parametrize("shape", list(SHAPES))
def test_file_names_are_cleaned_in_linear_time(shape: str) -> None:
    assert_linear(lambda text: clean_filename(text + ".txt"), SHAPES[shape])


def test_a_long_hostile_name_is_cut() -> None:
    assert clean_filename("../" * 300_000 + "a" * MB + ".txt") == "a" * 251 + ".txt"
    assert clean_filename("." * MB) == ""
