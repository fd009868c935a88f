"""Pure logic of the per-user slots and the question check (no process needed)."""

from __future__ import annotations

import uuid

import pytest

from rag_api.conversations import question_text
from rag_api.errors import ApiError
from rag_api.limits import too_many_uploads
from rag_api.user_slots import UserSlots


def test_slots_refuse_the_one_over_the_limit_and_free_on_exit() -> None:
    slots = UserSlots(2, too_many_uploads)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    with slots.hold(alice), slots.hold(alice):
        with pytest.raises(ApiError) as info, slots.hold(alice):
            pass
        assert (info.value.status, info.value.code, info.value.headers) == (
            429,
            "too_many_uploads",
            {"Retry-After": "1"},
        )
        with slots.hold(bob):  # another user is not affected
            assert (slots.held(alice), slots.held(bob)) == (2, 1)
    assert slots.held(alice) == 0 and slots._held == {}  # nothing kept for idle users


def test_a_failing_holder_still_frees_its_slot() -> None:
    slots = UserSlots(1, too_many_uploads)
    user = uuid.uuid4()
    with pytest.raises(RuntimeError), slots.hold(user):
        raise RuntimeError("the upload failed")
    with slots.hold(user):
        assert slots.held(user) == 1


@pytest.mark.parametrize("raw", ["", " ", "\n\t ", "x" * 11])
def test_question_text_refuses_empty_blank_and_long(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        question_text(raw, 10)
    assert (info.value.status, info.value.code) == (400, "invalid_content")


def test_question_text_is_stored_stripped_and_counted_as_sent() -> None:
    """The length is the text as sent, as the OpenAPI description's maxLength says."""
    assert question_text(" " + "y" * 8 + "\n", 10) == "y" * 8
    with pytest.raises(ApiError):
        question_text("  " + "y" * 10 + "\n", 10)
