"""Retry delays: exponential with jitter, so that retries of a burst spread out."""

from __future__ import annotations

import random

MAX_DELAY_SECONDS = 300.0


def retry_delay(attempt: int, base: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before the retry that follows failed attempt `attempt` (1-based).

    base * 2^(attempt-1), capped, then scaled by a random factor in [0.5, 1.5).
    """
    rng = rng or random.Random()
    raw = min(base * 2.0 ** max(0, attempt - 1), MAX_DELAY_SECONDS)
    return float(raw * rng.uniform(0.5, 1.5))
