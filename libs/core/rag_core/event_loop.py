"""The event loop every service runs on: uvloop where it is installed, asyncio's own otherwise.

uvloop (libuv under asyncio's API) is a drop-in for what the services use: sockets,
signal handlers, psycopg's async connections, hypercorn, threads for blocking calls. It
lowers the cost of each wake-up and socket write (docs/benchmarks.md measures both loops
in the same run). EVENT_LOOP=asyncio is the fallback switch, should a platform or a
library misbehave on it; `auto` (the default) takes uvloop when it imports.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_factory(choice: LoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for `choice` (None: asyncio's default loop). `uvloop` without the package raises."""
    if choice == "asyncio" or (choice == "auto" and importlib.util.find_spec("uvloop") is None):
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: LoopChoice = "auto") -> T:
    """`asyncio.run(main)` on the loop `choice` names."""
    try:
        factory = loop_factory(choice)
    except ImportError:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_name() -> str:
    """`uvloop` or `asyncio`: the running loop's kind, for the start-up log line."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
