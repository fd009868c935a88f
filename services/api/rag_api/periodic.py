"""One loop for the api's periodic housekeeping (event retention, the orphan sweeper).

Every replica runs each loop; the round itself decides, under an advisory lock, whether
this replica does the work. The first round comes within one interval of the start and
later ones are jittered by ±20 %, so that replicas started together do not all wake at
once. A failing round (the database or the bucket is down) is logged and the next round
tries again: housekeeping must never take the api down. Cancel the task to stop it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from rag_api.metrics import HOUSEKEEPING_LAST_SUCCESS, HOUSEKEEPING_ROUNDS

log = structlog.get_logger("rag_api.periodic")


async def run_periodically(name: str, interval: float, round_: Callable[[], Awaitable[bool]]) -> None:
    """Await `round_()` every `interval` seconds until cancelled; `name` labels its failures
    and its metrics. A round returns whether it did the work (False: another replica holds
    its lock), so that an operator sees work done somewhere, and a task that keeps failing."""
    delay = interval * random.uniform(0.05, 1.0)
    while True:
        await asyncio.sleep(delay)
        delay = interval * random.uniform(0.8, 1.2)
        try:
            done = await round_()
        except Exception as exc:
            HOUSEKEEPING_ROUNDS.labels(task=name, outcome="failed").inc()
            log.warning("periodic_round_failed", task=name, error=str(exc))
            continue
        HOUSEKEEPING_ROUNDS.labels(task=name, outcome="done" if done else "skipped").inc()
        HOUSEKEEPING_LAST_SUCCESS.labels(task=name).set(time.time())
