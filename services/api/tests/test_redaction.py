"""The redaction rule (rag_api.realtime.redaction) on streams written by hand: replay is
judged by the memberships now, live events update them, ids never change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rag_api.realtime.redaction import Redaction
from rag_eventbus import DeliveredEvent

ME, OTHER = uuid.uuid4(), uuid.uuid4()
W, V = str(uuid.uuid4()), str(uuid.uuid4())
AT = datetime(2026, 1, 1, tzinfo=UTC)


def stream(*items: tuple[str, dict[str, Any]]) -> list[DeliveredEvent]:
    return [DeliveredEvent(id=i, type=t, payload=p, created_at=AT) for i, (t, p) in enumerate(items, 1)]


def doc(workspace: str) -> tuple[str, dict[str, Any]]:
    return "document.deleted", {"document_id": str(uuid.uuid4()), "workspace_id": workspace}


def member(kind: str, workspace: str, user: uuid.UUID) -> tuple[str, dict[str, Any]]:
    return f"workspace.member_{kind}", {"workspace_id": workspace, "user_id": str(user), "role": "member"}


def seen(redaction: Redaction, events: list[DeliveredEvent]) -> list[tuple[int, str]]:
    return [(e.id, e.type) for e in (redaction.apply(e) for e in events)]


def test_live_removal_redacts_what_follows_and_readding_restores_it() -> None:
    events = stream(
        doc(W),
        member("removed", W, ME),
        doc(W),  # committed after the removal by a transaction that read the members before
        doc(V),
        member("added", W, ME),
        doc(W),
    )
    assert seen(Redaction(ME, [W, V], as_of=0), events) == [
        (1, "document.deleted"),
        (2, "workspace.member_removed"),
        (3, "event.redacted"),
        (4, "document.deleted"),
        (5, "workspace.member_added"),
        (6, "document.deleted"),
    ]


def test_a_replay_is_judged_by_the_memberships_now() -> None:
    # Added, saw W's events, removed: all read back after the removal (as_of = 4).
    events = stream(member("added", W, ME), doc(W), member("added", W, OTHER), member("removed", W, ME))
    out = [Redaction(ME, [], as_of=4).apply(e) for e in events]
    assert [(e.id, e.type) for e in out] == [
        (1, "workspace.member_added"),  # about me: delivered
        (2, "event.redacted"),
        (3, "event.redacted"),  # about someone else in W: W's content
        (4, "workspace.member_removed"),
    ]
    assert out[1].payload == {"workspace_id": W} and out[1].created_at == AT
    # The same history for a user who is a member again now: nothing to hide.
    assert [e.type for e in (Redaction(ME, [W], as_of=4).apply(e) for e in events)] == [
        "workspace.member_added",
        "document.deleted",
        "workspace.member_added",
        "workspace.member_removed",
    ]


def test_replay_then_live_switches_at_as_of() -> None:
    # Replayed (<= 2): membership changes are already in the set; live (> 2): they update it.
    events = stream(
        member("removed", W, ME), doc(W), member("added", W, ME), doc(W), member("removed", W, ME), doc(W)
    )
    assert seen(Redaction(ME, [], as_of=2), events) == [
        (1, "workspace.member_removed"),
        (2, "event.redacted"),
        (3, "workspace.member_added"),
        (4, "document.deleted"),
        (5, "workspace.member_removed"),
        (6, "event.redacted"),
    ]


def test_other_users_membership_changes_do_not_change_mine() -> None:
    events = stream(member("removed", W, OTHER), doc(W), member("added", V, OTHER), doc(V))
    assert seen(Redaction(ME, [W], as_of=0), events) == [
        (1, "workspace.member_removed"),
        (2, "document.deleted"),
        (3, "event.redacted"),  # V is not mine: someone else joining it is V's business
        (4, "event.redacted"),
    ]


def test_before_loading_everything_is_redacted_and_events_without_workspace_pass() -> None:
    [of_w, plain] = stream(doc(W), ("system.notice", {"text": "hi"}))
    assert Redaction(ME).apply(of_w).type == "event.redacted"
    assert Redaction(ME).apply(plain) is plain
