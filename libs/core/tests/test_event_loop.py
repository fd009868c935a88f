"""rag_core.event_loop: uvloop by default where installed, asyncio's loop on request."""

from __future__ import annotations

import asyncio

import pytest

from rag_core import event_loop


async def running_loop_kind() -> str:
    await asyncio.sleep(0)
    return event_loop.loop_name()


def test_auto_and_uvloop_run_on_uvloop_asyncio_on_its_own() -> None:
    assert event_loop.run(running_loop_kind()) == "uvloop"
    assert event_loop.run(running_loop_kind(), "uvloop") == "uvloop"
    assert event_loop.run(running_loop_kind(), "asyncio") == "asyncio"


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop.importlib.util, "find_spec", lambda name: None)
    assert event_loop.run(running_loop_kind()) == "asyncio"


def test_uvloop_demanded_but_missing_raises_and_leaves_no_unawaited_coroutine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(*_: object) -> None:
        raise ImportError("No module named 'uvloop'")

    monkeypatch.setattr(event_loop, "loop_factory", missing)
    coro = running_loop_kind()
    with pytest.raises(ImportError):
        event_loop.run(coro)
    assert coro.cr_frame is None  # closed, so no "never awaited" warning
