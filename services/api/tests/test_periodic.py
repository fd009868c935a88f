"""The housekeeping loop: rounds keep coming after a failure, and cancelling stops them."""

from __future__ import annotations

import asyncio

import pytest

from rag_api.metrics import HOUSEKEEPING_LAST_SUCCESS, HOUSEKEEPING_ROUNDS
from rag_api.periodic import run_periodically

pytestmark = pytest.mark.anyio


async def test_a_failing_round_is_logged_and_the_next_round_still_runs() -> None:
    rounds: list[int] = []
    three_rounds = asyncio.Event()

    async def round_() -> bool:
        rounds.append(len(rounds))
        if len(rounds) == 3:
            three_rounds.set()
        if len(rounds) == 1:
            raise OSError("the database is down")
        return len(rounds) == 2  # the third round is skipped: another replica holds the lock

    def count(outcome: str) -> float:
        return HOUSEKEEPING_ROUNDS.labels(task="test", outcome=outcome)._value.get()

    before = {outcome: count(outcome) for outcome in ("done", "skipped", "failed")}

    task = asyncio.create_task(run_periodically("test", 0.02, round_))
    await asyncio.wait_for(three_rounds.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    count_rounds = len(rounds)
    await asyncio.sleep(0.1)
    assert len(rounds) == count_rounds  # nothing runs once cancelled
    assert {outcome: count(outcome) - n for outcome, n in before.items()} == {
        "done": 1,
        "skipped": 1,
        "failed": 1,
    }
    assert HOUSEKEEPING_LAST_SUCCESS.labels(task="test")._value.get() > 0
