"""A test's check that a text path is linear in its input, robust on a loaded machine.

Time is CPU time of this process (what the work costs, not what the neighbours cost),
the best of three passes of each size, the sizes interleaved, and measured a second time
before a ratio over the bound fails. The input grows 8x: a linear path takes about 8x as long, a
quadratic one 64x; the bound of 32x (half the quadratic figure) keeps a loaded 2-core machine
from failing a linear path, which full CI runs read over 20x (the chunker on 1 MB of ". ":
24x in one run, over 20x in both measurements of the next; 10x when quiet), while any
quadratic one still fails. The absolute bound is
generous on purpose: speed figures belong to bench/pathological.py, this only catches minutes-per-MB paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

MB = 1_000_000
GROWTH = 8
MAX_RATIO = 32
MAX_SECONDS_PER_MB = 10.0

T = TypeVar("T")


def cpu_seconds(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def assert_linear(run: Callable[[T], object], make: Callable[[int], T], size: int = MB) -> None:
    """`run(make(size))` costs under MAX_SECONDS_PER_MB and grows linearly from size / 8."""
    big, small = make(size), make(size // GROWTH)
    for _attempt in range(2):  # a quadratic path fails both; a slow spell rarely spans two
        big_seconds, small_seconds = _best_of_three(run, big, small)
        assert big_seconds < MAX_SECONDS_PER_MB * size / MB, big_seconds
        if big_seconds < MAX_RATIO * small_seconds + 0.05:
            return
    raise AssertionError((big_seconds, small_seconds))


def _best_of_three(run: Callable[[T], object], big: T, small: T) -> tuple[float, float]:
    # Interleaved, so that a slow spell of the machine (a neighbour, a frequency drop) falls on
    # both sizes rather than on all three passes of one.
    bigs: list[float] = []
    smalls: list[float] = []
    for _ in range(3):
        bigs.append(cpu_seconds(lambda: run(big)))
        smalls.append(cpu_seconds(lambda: run(small)))
    return min(bigs), min(smalls)
