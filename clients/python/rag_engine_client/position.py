"""Where the client is in the user's stream, and what each frame does to it (pure logic).

The server's ids are consecutive per user within one epoch (docs/realtime.md). So an id at
or below the last one is a duplicate (a resume overlapping what was already delivered), and
an id above last + 1 is a gap: something was lost, and delivering on would deliver out of
order, so the connection must be dropped and resumed from the last id instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Verdict(enum.Enum):
    DELIVER = "deliver"
    DUPLICATE = "duplicate"
    GAP = "gap"


@dataclass
class StreamPosition:
    """The last delivered event id and the epoch it belongs to; None before any is known.

    After `resync_required` the last id is forgotten: the stream continues from a position
    the client was not told, and a new epoch's ids may be lower than the old ones, so the
    next event's id becomes the baseline.
    """

    last_event_id: int | None = None
    epoch: str | None = None

    def resume_params(self) -> dict[str, str]:
        """The query a (re)connect sends: the last id, and its epoch only with it."""
        if self.last_event_id is None:
            return {}
        params = {"last_event_id": str(self.last_event_id)}
        if self.epoch is not None:
            params["epoch"] = self.epoch
        return params

    def on_hello(self, payload: dict[str, Any]) -> bool:
        """Take hello's epoch; True when the client is fresh (no last id): hello's
        `last_event_id` is then the baseline, and the app must load its state over REST."""
        self.epoch = str(payload["epoch"])
        if self.last_event_id is None:
            self.last_event_id = int(payload["last_event_id"])
            return True
        return False

    def on_resync(self, payload: dict[str, Any]) -> None:
        self.epoch = str(payload["epoch"])
        self.last_event_id = None

    def judge(self, event_id: int) -> Verdict:
        """What to do with an event frame; a delivered one becomes the last id."""
        if self.last_event_id is not None:
            if event_id <= self.last_event_id:
                return Verdict.DUPLICATE
            if event_id > self.last_event_id + 1:
                return Verdict.GAP
        self.last_event_id = event_id
        return Verdict.DELIVER
