"""How long to wait before the next try: exponential backoff with equal jitter, capped.

Equal jitter (half the nominal delay fixed, the other half uniformly random) rather than
full jitter (``uniform(0, nominal)``): our retriers are job retries and reconnect loops
against a database or an HTTP endpoint that just failed. Full jitter spreads a burst a
little wider but lets any retry come back almost at once, hammering what just fell over;
equal jitter still spreads a burst over half the window (workers do not retry in
lockstep) and guarantees that the wait never falls below half the nominal delay, so the
backoff really grows with every failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# An upstream's Retry-After is obeyed up to this many seconds by default: a hostile or
# broken server must not park a worker for hours (the caller's own retry budget and the
# job runtime take over after that).
RETRY_AFTER_MAX_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``base_seconds * 2^(failures-1)``, capped at ``max_seconds``, with equal jitter."""

    base_seconds: float
    max_seconds: float
    retry_after_max_seconds: float = RETRY_AFTER_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.base_seconds < 0 or self.max_seconds < 0 or self.retry_after_max_seconds < 0:
            raise ValueError("retry delays must not be negative")

    def nominal(self, failures: int) -> float:
        """The un-jittered delay after `failures` consecutive failures (1 = the first)."""
        exponent = min(max(0, failures - 1), 64)  # 2^64 * any base is past every cap
        return min(self.base_seconds * 2.0**exponent, self.max_seconds)

    def backoff(self, failures: int, rng: random.Random | None = None) -> float:
        """A delay in [nominal/2, nominal]: equal jitter (see the module docstring)."""
        half = self.nominal(failures) / 2
        return half + (rng or random).uniform(0.0, half)

    def delay(
        self, failures: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The upstream's ``Retry-After`` (seconds) when it gave one, capped; else the backoff.

        The server knows when it will take us again: its word wins over our guess, in
        both directions (shorter than the backoff as well as longer), up to the cap.
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_max_seconds)
        return self.backoff(failures, rng)
