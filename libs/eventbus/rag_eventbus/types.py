"""What travels on the bus: an event before it is published, and as a user receives it.

The bus knows nothing of the product. A producer hands `publish` anything with a `type`
and a JSON `payload`; who receives it is decided in Postgres (migration of this package)
from the payload, and each recipient gets it under the next id of their own stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson


class Publishable(Protocol):
    """An event a producer publishes: its type and its JSON payload."""

    @property
    def type(self) -> str: ...

    @property
    def payload(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """An event as a user receives it: numbered in that user's own stream.

    A slotted dataclass, not a pydantic model: an api replica builds one per event per
    connected recipient, and validation would only re-check what Postgres wrote.
    """

    id: int
    type: str
    payload: dict[str, Any]
    created_at: datetime

    def to_frame(self) -> bytes:
        return orjson.dumps(
            {"id": self.id, "type": self.type, "payload": self.payload, "created_at": self.created_at}
        )
