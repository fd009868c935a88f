"""DeliveredEvent: the frame a user receives, encoded once however many sockets it goes to."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from rag_eventbus import DeliveredEvent


def test_the_frame_is_encoded_once_and_says_what_the_event_holds() -> None:
    created = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    event = DeliveredEvent(
        id=7, type="document.status_updated", payload={"status": "parsed", "é": "ü"}, created_at=created
    )
    frame = event.to_frame()
    assert event.to_frame() is frame  # kept, not encoded again for the user's next socket
    assert event.to_text() is event.to_text()
    assert event.to_text() == frame.decode()
    assert orjson.loads(frame) == {
        "id": 7,
        "type": "document.status_updated",
        "payload": {"status": "parsed", "é": "ü"},
        "created_at": "2026-12-01T12:00:00+00:00",
    }
    # The cache is not part of the event: equal events compare equal whether encoded or not.
    assert event == DeliveredEvent(
        id=7, type="document.status_updated", payload={"status": "parsed", "é": "ü"}, created_at=created
    )
