"""The compute pool: CPU-bound calls in child processes, killed with their job.

The runaway computation used here is the chunker's sentence pattern as it was before it
was made linear: one ``re.search`` over a run of dots is quadratic and holds the GIL for
its whole duration, which is exactly what froze the worker's event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator

import pytest

from rag_ingest_worker.chunking import chunk_text
from rag_ingest_worker.compute import ComputeCrashed, ComputePool

pytestmark = [pytest.mark.anyio, pytest.mark.integration]  # real child processes

QUADRATIC_SENTENCE_END = r"[.!?…。！？]+[\"'”’)\]]*\s+"
ABOUT_TWO_SECONDS_OF_DOTS = "." * 12_000  # ~1.5 s of one regex call on an idle machine
MINUTES_OF_DOTS = "." * 300_000


@pytest.fixture
async def pool() -> AsyncIterator[ComputePool]:
    compute = ComputePool(2)
    await asyncio.to_thread(compute.start)
    try:
        yield compute
    finally:
        compute.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False
    return state not in ("Z", "X")


async def longest_loop_stall(during: asyncio.Future[object] | asyncio.Task[object]) -> float:
    """The longest gap between two 10 ms ticks of the event loop while ``during`` runs."""
    worst = 0.0
    last = time.monotonic()
    while not during.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        worst = max(worst, now - last - 0.01)
        last = now
    return worst


async def test_chunks_computed_in_a_child_are_the_chunker_s_chunks(pool: ComputePool) -> None:
    text = "# Guide\n\n" + "A sentence about the topic. " * 400 + "\f## Next\n\nMore."
    assert await pool.chunk(text) == chunk_text(text)
    assert await pool.chunk("") == []


async def test_a_gil_holding_computation_in_the_pool_leaves_the_loop_responsive(pool: ComputePool) -> None:
    task = asyncio.ensure_future(pool.run(re.search, QUADRATIC_SENTENCE_END, ABOUT_TWO_SECONDS_OF_DOTS))
    stall = await longest_loop_stall(task)
    assert (await task) is None
    assert stall < 0.5, f"the loop stalled {stall:.2f} s"
    # The control: the same call in a thread holds the GIL and freezes the loop, which is
    # what the pool is for (and proves that this measurement can see a stall).
    in_thread = asyncio.ensure_future(
        asyncio.to_thread(re.search, QUADRATIC_SENTENCE_END, ABOUT_TWO_SECONDS_OF_DOTS)
    )
    assert await longest_loop_stall(in_thread) > 0.5


async def test_a_cancelled_call_kills_its_child_and_the_slot_is_replaced(pool: ComputePool) -> None:
    started = set(pool.pids())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await pool.run(re.search, QUADRATIC_SENTENCE_END, MINUTES_OF_DOTS)
    assert pool.replaced == 1
    for _ in range(100):  # the kill is immediate; reaping the process may take a moment
        if not all(alive(pid) for pid in started):
            break
        await asyncio.sleep(0.05)
    survivors = [pid for pid in started if alive(pid)]
    assert len(survivors) == 1, "exactly the child running the cancelled call is gone"
    # Both slots work afterwards, in two live processes.
    pids = await asyncio.gather(pool.run(os.getpid), pool.run(os.getpid))
    assert all(alive(pid) for pid in pids)
    assert await pool.chunk("One. Two.") == chunk_text("One. Two.")


async def test_a_call_that_kills_its_child_twice_fails_readably_and_the_pool_recovers(
    pool: ComputePool,
) -> None:
    with pytest.raises(ComputeCrashed, match="stopped unexpectedly"):
        await pool.run(os.abort)  # the child dies (SIGABRT), as under the OOM killer
    assert pool.replaced == 2, "replaced, tried once more, replaced again"
    assert await pool.chunk("Still works.") == chunk_text("Still works.")


async def test_an_idle_child_killed_from_outside_is_replaced_without_failing_a_call(
    pool: ComputePool,
) -> None:
    for pid in pool.pids():
        os.kill(pid, signal.SIGKILL)
    results = await asyncio.gather(pool.chunk("One. Two."), pool.chunk("Three."))
    assert results == [chunk_text("One. Two."), chunk_text("Three.")]
    assert pool.replaced == 2


async def test_errors_raised_by_the_call_reach_the_caller_and_keep_the_child(pool: ComputePool) -> None:
    before = set(pool.pids())
    with pytest.raises(re.error):
        await pool.run(re.compile, "(")
    assert pool.replaced == 0
    assert set(await asyncio.gather(pool.run(os.getpid), pool.run(os.getpid))) == before


async def test_ctrl_c_to_the_process_group_leaves_the_children_to_the_worker(pool: ComputePool) -> None:
    # A terminal's Ctrl-C (or `make dev`'s) reaches every process of the group: the
    # children must neither die mid-call nor print a traceback; the worker stops them.
    pids = pool.pids()
    for pid in pids:
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert all(alive(pid) for pid in pids)
    assert await pool.chunk("One sentence. Two sentences.") == chunk_text("One sentence. Two sentences.")
    assert pool.replaced == 0 and pool.pids() == pids
