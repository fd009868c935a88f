"""The one backoff rule: exponential, capped, equal jitter; Retry-After wins up to its cap."""

from __future__ import annotations

import random

import pytest

from rag_retry import RetryPolicy


def test_the_nominal_delay_doubles_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=2.0, max_seconds=300.0)
    assert [policy.nominal(n) for n in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    assert policy.nominal(9) == 300.0
    assert policy.nominal(10_000) == 300.0  # no overflow, however long the outage
    assert policy.nominal(0) == 2.0


def test_equal_jitter_stays_within_half_and_all_of_the_nominal_delay() -> None:
    policy = RetryPolicy(base_seconds=2.0, max_seconds=300.0)
    rng = random.Random(7)
    for failures in range(1, 12):
        nominal = policy.nominal(failures)
        delays = [policy.backoff(failures, rng) for _ in range(200)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        # Spread, so that a burst of failures does not retry in lockstep.
        assert max(delays) - min(delays) > nominal / 4


def test_the_backoff_grows_with_every_failure_despite_the_jitter() -> None:
    # The shortest wait after n+1 failures is the longest after n (until the cap).
    policy = RetryPolicy(base_seconds=0.1, max_seconds=5.0)
    rng = random.Random(1)
    for failures in range(1, 6):
        longest = max(policy.backoff(failures, rng) for _ in range(200))
        shortest_next = min(policy.backoff(failures + 1, rng) for _ in range(200))
        assert shortest_next >= longest


def test_retry_after_wins_over_the_backoff_in_both_directions_up_to_its_cap() -> None:
    policy = RetryPolicy(base_seconds=30.0, max_seconds=30.0, retry_after_max_seconds=60.0)
    assert policy.delay(1, retry_after=1.0) == 1.0
    assert policy.delay(1, retry_after=45.0) == 45.0
    assert policy.delay(1, retry_after=0.0) == 0.0
    assert policy.delay(1, retry_after=7200.0) == 60.0  # a hostile upstream cannot park us for hours
    assert policy.delay(1, retry_after=-5.0) == 0.0
    assert 15.0 <= policy.delay(1) <= 30.0


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base_seconds=-1.0, max_seconds=1.0)
