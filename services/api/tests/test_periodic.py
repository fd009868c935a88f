"""The housekeeping loop: rounds keep coming after a failure, and cancelling stops them."""

from __future__ import annotations

import asyncio

import pytest

from rag_api.periodic import run_periodically

pytestmark = pytest.mark.anyio


async def test_a_failing_round_is_logged_and_the_next_round_still_runs() -> None:
    rounds: list[int] = []
    three_rounds = asyncio.Event()

    async def round_() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 3:
            three_rounds.set()
        if len(rounds) == 1:
            raise OSError("the database is down")

    task = asyncio.create_task(run_periodically("test", 0.02, round_))
    await asyncio.wait_for(three_rounds.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    count = len(rounds)
    await asyncio.sleep(0.1)
    assert len(rounds) == count  # nothing runs once cancelled
