"""What the client's integration tests share: an api without workers, and a recorder that
keeps what a `Realtime` hands to the app (events, ready/resync hooks, state changes)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from rag_engine_client import Event, Realtime
from rag_testing.system import System


@pytest.fixture
def api(system_factory: Any) -> System:
    """One real api process (hypercorn, Postgres, S3); no workers, so an upload publishes
    exactly document.created and job.status_updated (parse queued)."""
    system: System = system_factory(workers=False)
    return system


@dataclass
class Recorder:
    """The app side of a Realtime: every hook it was called with, in order."""

    events: list[Event] = field(default_factory=list)
    ready: list[dict[str, Any]] = field(default_factory=list)
    resyncs: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, str]] = field(default_factory=list)

    def hooks(self) -> dict[str, Callable[..., Any]]:
        return {
            "on_event": self.events.append,
            "on_ready": self.ready.append,
            "on_resync": self.resyncs.append,
            "on_state": lambda state, detail: self.states.append((state, detail)),
        }

    @property
    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def until(self, condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
        """Wait (generously: the machine is shared) until `condition()` holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not met in {timeout} s: {what}; events {self.types}, states {self.states}"
                )
            await asyncio.sleep(0.05)

    async def live(self, realtime: Realtime, timeout: float = 60) -> None:
        await self.until(lambda: realtime.state == "live", timeout, "live")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def new_user() -> uuid.UUID:
    return uuid.uuid4()
