"""The frame state machine: baseline from hello, dedupe, gap, resync (pure, no socket)."""

from __future__ import annotations

from rag_engine_client.position import StreamPosition, Verdict

HELLO = {"user_id": "u", "epoch": "e1", "last_event_id": 7}


def test_a_fresh_client_takes_hellos_id_as_baseline_and_must_load_its_state() -> None:
    position = StreamPosition()
    assert position.resume_params() == {}
    assert position.on_hello(HELLO) is True
    assert (position.last_event_id, position.epoch) == (7, "e1")
    assert position.judge(8) is Verdict.DELIVER
    assert position.resume_params() == {"last_event_id": "8", "epoch": "e1"}


def test_a_resuming_client_keeps_its_own_id_and_takes_hellos_epoch() -> None:
    position = StreamPosition(last_event_id=3, epoch="e1")
    assert position.on_hello({**HELLO, "epoch": "e1"}) is False
    assert position.last_event_id == 3
    assert [position.judge(i) for i in (4, 5)] == [Verdict.DELIVER, Verdict.DELIVER]


def test_duplicates_after_a_resume_are_dropped_and_do_not_move_the_position() -> None:
    position = StreamPosition(last_event_id=5, epoch="e1")
    assert [position.judge(i) for i in (3, 5, 6, 6, 4, 7)] == [
        Verdict.DUPLICATE,
        Verdict.DUPLICATE,
        Verdict.DELIVER,
        Verdict.DUPLICATE,
        Verdict.DUPLICATE,
        Verdict.DELIVER,
    ]
    assert position.last_event_id == 7


def test_a_gap_is_not_delivered_and_the_resume_point_stays_before_it() -> None:
    position = StreamPosition(last_event_id=5, epoch="e1")
    assert position.judge(7) is Verdict.GAP
    assert position.last_event_id == 5
    assert position.resume_params() == {"last_event_id": "5", "epoch": "e1"}
    assert position.judge(6) is Verdict.DELIVER


def test_resync_forgets_the_id_so_a_new_epochs_lower_ids_become_the_baseline() -> None:
    position = StreamPosition(last_event_id=500, epoch="old")
    position.on_resync({"oldest_event_id": 1, "epoch": "new"})
    assert (position.last_event_id, position.epoch) == (None, "new")
    assert position.resume_params() == {}  # an epoch alone is not sent: it only qualifies an id
    assert position.judge(3) is Verdict.DELIVER
    assert position.resume_params() == {"last_event_id": "3", "epoch": "new"}
    assert position.judge(3) is Verdict.DUPLICATE
