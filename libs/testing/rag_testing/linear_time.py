"""A test's check that a text path is linear in its input, robust on a loaded machine.

Time is CPU time of this process (what the work costs, not what the neighbours cost),
the best of three passes of each size, the sizes interleaved. The input grows 8x: a linear path takes about 8x as long, a
quadratic one 64x; the bound of 20x keeps a noisy 2-core machine from failing a linear
path while any quadratic one still fails. The absolute bound is generous on purpose:
speed figures belong to bench/pathological.py, this only catches minutes-per-MB paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

MB = 1_000_000
GROWTH = 8
MAX_RATIO = 20
MAX_SECONDS_PER_MB = 10.0

T = TypeVar("T")


def cpu_seconds(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def assert_linear(run: Callable[[T], object], make: Callable[[int], T], size: int = MB) -> None:
    """`run(make(size))` costs under MAX_SECONDS_PER_MB and grows linearly from size / 8."""
    big, small = make(size), make(size // GROWTH)
    # Interleaved, so that a slow spell of the machine (a neighbour, a frequency drop) falls on
    # both sizes rather than on all three passes of one.
    bigs: list[float] = []
    smalls: list[float] = []
    for _ in range(3):
        bigs.append(cpu_seconds(lambda: run(big)))
        smalls.append(cpu_seconds(lambda: run(small)))
    big_seconds, small_seconds = min(bigs), min(smalls)
    assert big_seconds < MAX_SECONDS_PER_MB * size / MB, big_seconds
    assert big_seconds < MAX_RATIO * small_seconds + 0.05, (big_seconds, small_seconds)
