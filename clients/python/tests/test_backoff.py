"""Reconnect delays: equal jitter keeps a floor of half the capped delay, doubles, caps, resets."""

from __future__ import annotations

import itertools

from rag_engine_client import Backoff


def test_equal_jitter_is_between_half_and_all_of_the_doubling_ceiling() -> None:
    lowest = Backoff(rand=lambda: 0.0)
    highest = Backoff(rand=lambda: 0.999999)
    assert [lowest.next_delay() for _ in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert [round(highest.next_delay(), 3) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_the_ceiling_caps_at_the_maximum_however_many_failures() -> None:
    backoff = Backoff(first=0.5, maximum=30.0, rand=lambda: 0.5)
    delays = [backoff.next_delay() for _ in range(2000)]  # 2 ** 2000 would overflow a float
    assert max(delays) == 22.5  # 15 + 0.5 * 15
    assert delays[-1] == 22.5
    assert all(a <= b for a, b in itertools.pairwise(delays))


def test_reset_after_a_hello_starts_over() -> None:
    backoff = Backoff(rand=lambda: 0.0)
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.25


def test_real_jitter_spreads_clients() -> None:
    delays = {Backoff().next_delay() for _ in range(50)}
    assert len(delays) > 40
    assert all(0.25 <= d <= 0.5 for d in delays)
