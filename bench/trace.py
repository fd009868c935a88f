"""Where a wake-up of our worker spends its time (BENCH_TRACE=1 in `bench.jobworker`).

Instruments, in the worker's process only: the moment the listener rings the worker's
wake-up event, the claim transaction (start, end) and every statement executed inside
it (psycopg cursor executes, the fetches that wait for results, BEGIN, COMMIT). Each handler
start then reports those times with its own, so the bench can split commit → start into its
parts. A claim is one statement, one round trip (rag_jobqueue.effects); a rescue that fails
jobs out of attempts adds a transaction of its own.
"""

from __future__ import annotations

import contextvars
import time
from collections import defaultdict
from typing import Any

STATE: dict[str, Any] = {"notify": 0, "claim0": 0, "claim1": 0}
STATEMENTS: dict[str, list[float]] = defaultdict(list)
# The statements of the claim in progress (None outside a claim); kept only if it claimed a job.
_in_claim: contextvars.ContextVar[list[tuple[str, float]] | None] = contextvars.ContextVar(
    "in_claim", default=None
)


def _label(query: Any) -> str:
    text = query if isinstance(query, str) else getattr(query, "_obj", None) or repr(query)
    if not isinstance(text, str):
        text = " ".join(str(part) for part in text) if isinstance(text, list) else str(text)
    words = " ".join(text.split())
    for needle, label in (
        ("WITH picked", "claim statement (FIFO)"),
        ("WITH RECURSIVE firsts", "claim statement (fair claim, effects, publish)"),
        ("UPDATE documents", "UPDATE documents (status)"),
        ("FROM workspace_members", "SELECT recipients"),
        ("INSERT INTO user_streams", "INSERT user_streams (ids)"),
        ("INSERT INTO audience_events", "INSERT audience_events"),
        ("pg_notify", "NOTIFY rag_realtime"),
        ("eventbus_publish", "publish (eventbus_publish)"),
    ):
        if needle in words:
            return label
    return words[:40]


def install() -> None:
    from psycopg import AsyncCursor, AsyncTransaction

    import rag_jobqueue.worker as worker_module

    original_execute = AsyncCursor.execute

    async def execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        current = _in_claim.get()
        if current is None:
            return await original_execute(self, query, params, **kwargs)
        t0 = time.perf_counter_ns()
        result = await original_execute(self, query, params, **kwargs)
        current.append((_label(query), (time.perf_counter_ns() - t0) / 1e6))
        return result

    AsyncCursor.execute = execute  # type: ignore[method-assign]

    original_fetchall = AsyncCursor.fetchall

    async def fetchall(self: Any) -> Any:
        current = _in_claim.get()
        if current is None:
            return await original_fetchall(self)
        t0 = time.perf_counter_ns()
        result = await original_fetchall(self)
        current.append(("fetch the claimed rows", (time.perf_counter_ns() - t0) / 1e6))
        return result

    AsyncCursor.fetchall = fetchall  # type: ignore[method-assign]

    enter, leave = AsyncTransaction.__aenter__, AsyncTransaction.__aexit__

    async def timed_enter(self: Any) -> Any:
        current = _in_claim.get()
        if current is None:
            return await enter(self)
        t0 = time.perf_counter_ns()
        result = await enter(self)
        current.append(("BEGIN", (time.perf_counter_ns() - t0) / 1e6))
        return result

    async def timed_exit(self: Any, *exc: Any) -> Any:
        current = _in_claim.get()
        if current is None:
            return await leave(self, *exc)
        t0 = time.perf_counter_ns()
        result = await leave(self, *exc)
        current.append(("COMMIT", (time.perf_counter_ns() - t0) / 1e6))
        return result

    setattr(AsyncTransaction, "__aenter__", timed_enter)  # noqa: B010 (patching on purpose)
    setattr(AsyncTransaction, "__aexit__", timed_exit)  # noqa: B010

    original_claim = worker_module.Worker._claim

    async def claim(self: Any, statement: Any, limit: int, *, takeover: bool) -> Any:
        statements: list[tuple[str, float]] = []
        token = _in_claim.set(statements)
        t0 = time.time_ns()
        try:
            result = await original_claim(self, statement, limit, takeover=takeover)
        finally:
            _in_claim.reset(token)
        jobs, _due_in = result
        if jobs:  # the empty claims (nothing due) are not what a wake-up waits for
            STATE["claim0"], STATE["claim1"] = t0, time.time_ns()
            STATEMENTS["claims"].append(1.0)
            for label, ms in statements:
                STATEMENTS[label].append(ms)
        return result

    worker_module.Worker._claim = claim  # type: ignore[method-assign]

    original_wakeup = getattr(worker_module, "wakeup_listener")  # noqa: B009 (imported there, not exported)

    def wakeup_listener(dsn: str, channels: Any, event: Any) -> Any:
        class Timed:
            def set(self) -> None:
                STATE["notify"] = time.time_ns()
                event.set()

        return original_wakeup(dsn, channels, Timed())

    setattr(worker_module, "wakeup_listener", wakeup_listener)  # noqa: B010


def statement_summary() -> dict[str, list[float]]:
    """Milliseconds per statement label, over the claims that claimed a job ("claims": one 1.0 each)."""
    return {k: list(v) for k, v in STATEMENTS.items()}
