"""Format detection is linear in the file: the api sniffs every upload, the worker every job.

`sniff` reads only HEAD_BYTES whatever the file's size; the Word part scan reads the
whole stream, across chunk boundaries, without re-scanning. 1 MB of each hostile shape
within a generous CPU bound, and the growth from 128 KB well below quadratic.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag_core.formats import HEAD_BYTES, Unsupported, WordScanner, detect, sniff
from rag_testing.linear_time import MB, assert_linear, cpu_seconds


def repeat(piece: bytes, prefix: bytes = b"") -> Callable[[int], bytes]:
    return lambda n: prefix + piece * (n // len(piece))


SHAPES: dict[str, Callable[[int], bytes]] = {
    "nuls": repeat(b"\x00"),
    "utf-16-le-pattern": repeat(b"a\x00"),
    "utf-16-bom-then-nul-chars": repeat(b"\x00\x00", b"\xfe\xff"),
    "utf-32-bom-then-garbage": repeat(b"\xff\xff\xff\xff", b"\xff\xfe\x00\x00"),
    "control-bytes": repeat(b"\x01\x02\x03"),
    "invalid-utf-8": repeat(b"\xe9"),
    "cut-utf-8-sequences": repeat(b"\xe2\x82"),
    "dots": repeat(b"."),
    "pdf-near-miss": repeat(b"%PDF"),
    "zip-near-miss": repeat(b"word/document.xm", b"PK\x03\x04"),
    "zip-magic-runs": repeat(b"PK\x03\x04"),
}
NAMES = ("x.txt", "x.md", "x.html", "x.pdf", "x.docx", "x.exe", "noextension")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_head_of_any_file_is_sniffed_in_linear_time(shape: str) -> None:
    def run(data: bytes) -> object:
        head = data[:HEAD_BYTES]
        return [sniff(name, head, len(data) <= HEAD_BYTES) for name in NAMES]

    assert_linear(run, SHAPES[shape])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_whole_file_is_detected_in_linear_time(shape: str) -> None:
    assert_linear(lambda data: [detect(name, data) for name in NAMES], SHAPES[shape])


def test_a_binary_head_is_refused() -> None:
    assert isinstance(sniff("x.txt", b"\x00" * HEAD_BYTES, False), Unsupported)


def test_the_docx_member_scan_is_linear_across_chunks() -> None:
    def scan(data: bytes) -> bool:
        scanner = WordScanner()
        for start in range(0, len(data), 64 * 1024):
            scanner.feed(data[start : start + 64 * 1024])
        return scanner.main_part

    near_miss = b"word/document.xm" * (4 * MB // 16)  # never the whole name
    assert not scan(near_miss)
    seconds = cpu_seconds(lambda: scan(near_miss))
    assert seconds < 2.0, seconds
    assert scan(near_miss[: 64 * 1024 - 3] + b"word/document.xml")  # across a chunk boundary
