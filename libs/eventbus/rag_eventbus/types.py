"""What travels on the bus: an event before it is published, and as a user receives it.

The bus knows nothing of the product. A producer hands `publish` anything with a `type`,
an `audience` and a JSON `payload`; the application's `eventbus_recipients` view says who
belongs to the audience (migrations/0001_event_log.sql), and each recipient gets the event
under the next id of their own stream. The audience is not delivered: only type and payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson


class Publishable(Protocol):
    """An event a producer publishes: its type, who it is for, and its JSON payload."""

    @property
    def type(self) -> str: ...

    @property
    def audience(self) -> UUID:
        """The group the event is for; its users are the rows of `eventbus_recipients`."""

    @property
    def payload(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """An event as a user receives it: numbered in that user's own stream.

    A slotted dataclass, not a pydantic model: an api replica builds one per event per
    connected recipient, and validation would only re-check what Postgres wrote. The hub
    hands the same object to every socket of its user, so the frame is encoded once per
    user, on first use, and kept (`to_frame`, `to_text`).
    """

    id: int
    type: str
    payload: dict[str, Any]
    created_at: datetime
    # The W3C trace context it was published in (None: tracing off): for the deliverer's
    # span, never part of the frame.
    traceparent: str | None = None
    _frame: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def to_frame(self) -> bytes:
        """The frame's JSON (what SSE writes)."""
        if self._frame is None:
            frame = orjson.dumps(
                {"id": self.id, "type": self.type, "payload": self.payload, "created_at": self.created_at}
            )
            object.__setattr__(self, "_frame", frame)  # a cache: the event itself stays frozen
            return frame
        return self._frame

    def to_text(self) -> str:
        """The frame as text (what a WebSocket text message carries)."""
        if self._text is None:
            text = self.to_frame().decode()
            object.__setattr__(self, "_text", text)
            return text
        return self._text
