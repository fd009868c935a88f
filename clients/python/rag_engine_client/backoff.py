"""Reconnect delays: exponential backoff with "equal jitter".

Equal jitter (half the capped exponential delay, plus a random part of the other half) keeps
a floor under every wait, so a client never hammers a server that just went away, while
spreading many clients that lost the same replica over the second half of the window.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of consecutive failed attempts: first ~`first`, doubling, capped at `maximum`.

    `reset()` after a connection said hello: the next failure starts over from `first`.
    """

    first: float = 0.5
    maximum: float = 30.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    attempt: int = 0

    def ceiling(self, attempt: int) -> float:
        """The capped exponential delay of the `attempt`-th failure (0-based), before jitter."""
        # 2 ** attempt grows without bound; cap the exponent before it overflows a float.
        exponential: float = self.first * 2.0 ** min(attempt, 64)
        return min(self.maximum, exponential)

    def next_delay(self) -> float:
        """The wait before the next attempt, and count this failure."""
        ceiling = self.ceiling(self.attempt)
        self.attempt += 1
        return ceiling / 2 + self.rand() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0
