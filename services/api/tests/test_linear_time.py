"""The api's own text paths are linear: upload sniffing and names, and the extractive answerer.

They were already (the sniffer reads only HEAD_BYTES; its patterns and the answerer's
``\\w+`` and ``(?<=[.!?])\\s+`` cannot re-scan), and these tests keep them so: 1 MB of each
hostile shape within a generous CPU bound, and the growth from 256 KB well below quadratic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from rag_api.answering.providers import NOTHING_FOUND, ExtractiveProvider
from rag_api.search import Hit
from rag_api.sniff import HEAD_BYTES, DocxScanner, Unsupported, clean_filename, sniff
from rag_testing.linear_time import MB, assert_linear, cpu_seconds

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
def test_file_names_and_heads_are_sniffed_in_linear_time(shape: str) -> None:
    make = SHAPES[shape]

    def run(text: str) -> object:
        name = clean_filename(text + ".txt")
        head = text.encode()
        return name, sniff(name or "x.txt", head[:HEAD_BYTES], len(head) <= HEAD_BYTES)

    assert_linear(run, make)


def test_a_long_hostile_name_is_cut_and_a_binary_head_refused() -> None:
    assert clean_filename("../" * 300_000 + "a" * MB + ".txt") == "a" * 251 + ".txt"
    assert clean_filename("." * MB) == ""
    verdict = sniff("x.txt", b"\x00" * HEAD_BYTES, False)
    assert isinstance(verdict, Unsupported)


def test_the_docx_member_scan_is_linear_across_chunks() -> None:
    def scan(data: bytes) -> bool:
        scanner = DocxScanner()
        for start in range(0, len(data), 64 * 1024):
            scanner.feed(data[start : start + 64 * 1024])
        return scanner.found

    near_miss = b"word/document.xm" * (4 * MB // 16)  # never the whole name
    assert not scan(near_miss)
    seconds = cpu_seconds(lambda: scan(near_miss))
    assert seconds < 2.0, seconds
    assert scan(near_miss[: 64 * 1024 - 3] + b"word/document.xml")  # across a chunk boundary
