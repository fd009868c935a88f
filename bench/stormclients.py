"""Child process: WebSocket clients that resume together, as after an api replica restart.

    python -m bench.stormclients URL SOCKETS_FILE

SOCKETS_FILE is a JSON list of `{"user": uuid, "u": user index}`, one entry per socket
(several sockets may share a user). Each socket keeps what a real client keeps across a
reconnect, its last event id and the epoch of its hello, and checks every event frame:
the only acceptable id is `last + 1` (anything else is a gap, a duplicate or out of
order, counted as a violation). A close with 1001 (the replica shutting down) parks the
socket until the next `go`; any other close or a refused connection during a `go` is
retried after a short random backoff with the same last id, and counted.

Commands on stdin, one JSON line each:
- `{"t":"go","resume":bool,"targets":{u: id},"timeout":S,"parallel":P}`: every parked
  socket connects (P handshakes at a time, 0: all at once), with `last_event_id` and
  `epoch` when `resume`; answered `{"t":"done",...}` once every socket has its hello and
  has received up to its user's target id (or S seconds passed), plus a short linger in
  which a late duplicate would still be counted.
- `{"t":"wait","targets":{u: id},"timeout":S}`: the same wait, without connecting
  (live events), answered `{"t":"reached",...}`.
- `{"t":"parked","timeout":S}`, sent just before the bench stops the api: answered
  `{"t":"armed"}` at once, then `{"t":"parked","count":N,"closes":{code: n}}` once every
  socket was closed (or S passed).
Exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.common import emit, now_ns, stdin_lines
from rag_core.tokens import mint_token
from rag_testing.system import TEST_JWT_SECRET

PONG = '{"type":"pong"}'
GOING_AWAY = 1001
LINGER = 1.0  # seconds after completion in which a late duplicate still counts
BACKOFF = (0.2, 1.0)  # seconds, uniform: a retry after a refused or dropped connection


class Socket:
    """One client socket and what it keeps across reconnects."""

    __slots__ = (
        "attempts",
        "done_ns",
        "epoch",
        "hello_ns",
        "last",
        "open_ns",
        "parked",
        "started_ns",
        "target",
        "token",
        "user",
    )

    def __init__(self, user: int, user_id: str) -> None:
        self.user = user
        self.token = mint_token(uuid.UUID(user_id), TEST_JWT_SECRET, 24 * 3600)
        self.last = 0
        self.epoch = ""
        self.target = 0
        self.parked = asyncio.Event()
        self.parked.set()
        self.started_ns = self.open_ns = self.hello_ns = self.done_ns = 0
        self.attempts = 0

    def reset(self, target: int) -> None:
        self.target = target
        self.started_ns = self.open_ns = self.hello_ns = self.done_ns = 0
        self.attempts = 0

    @property
    def complete(self) -> bool:
        return self.hello_ns > 0 and self.last >= self.target


class Storm:
    """What every socket of this process shares during one `go`."""

    def __init__(self) -> None:
        self.violations = 0
        self.examples: list[str] = []
        self.resyncs = 0
        self.epoch_changes = 0
        self.closes: Counter[str] = Counter()  # close codes and connect failures seen
        self.reconnects = 0
        self.progress = asyncio.Event()
        self.active = True  # False once the `go` was answered: a close then parks the socket

    def violation(self, text: str) -> None:
        self.violations += 1
        if len(self.examples) < 5:
            self.examples.append(text)


class Shared:
    """The current `go` or `wait` (replaced by each command), as the sockets see it."""

    def __init__(self) -> None:
        self.storm = Storm()


async def session(
    url: str, sock: Socket, shared: Shared, resume: bool, sem: asyncio.Semaphore | None
) -> None:
    """Connect (again) until the server parks us with 1001 (or closes us between two `go`)."""
    while True:
        storm = shared.storm
        query = f"?token={sock.token}"
        if resume and sock.epoch:
            query += f"&last_event_id={sock.last}&epoch={sock.epoch}"
        sock.attempts += 1
        try:
            if sem is not None:
                async with sem:
                    ws = await connect(url + query, open_timeout=120, max_queue=None)
            else:
                ws = await connect(url + query, open_timeout=120, max_queue=None)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            storm.closes[f"connect failed: {type(exc).__name__}"] += 1
            storm.reconnects += 1
            await asyncio.sleep(random.uniform(*BACKOFF))
            continue
        if not sock.open_ns:
            sock.open_ns = now_ns()
        code = await read(ws, sock, shared)
        storm = shared.storm
        storm.closes[str(code)] += 1
        if code == GOING_AWAY or not storm.active:
            sock.parked.set()
            storm.progress.set()
            return
        storm.reconnects += 1
        await asyncio.sleep(random.uniform(*BACKOFF))
        resume = True  # a reconnect always resumes from what arrived


async def read(ws: ClientConnection, sock: Socket, shared: Shared) -> int:
    """Read until the socket closes; its close code."""
    try:
        async for message in ws:
            storm = shared.storm
            frame = orjson.loads(message)
            event_id = frame.get("id")
            if event_id is not None:
                if event_id != sock.last + 1:
                    storm.violation(f"user {sock.user}: got id {event_id} after {sock.last}")
                sock.last = max(sock.last, event_id)
                if sock.last >= sock.target and sock.hello_ns and not sock.done_ns:
                    sock.done_ns = now_ns()
                    storm.progress.set()
                continue
            kind = frame.get("type")
            if kind == "ping":
                await ws.send(PONG)
            elif kind == "hello":
                payload = frame["payload"]
                if sock.epoch and payload["epoch"] != sock.epoch:
                    storm.epoch_changes += 1
                sock.epoch = payload["epoch"]
                if not sock.hello_ns:
                    sock.hello_ns = now_ns()
                if not sock.last and not sock.target:  # a first, live connection
                    sock.last = int(payload["last_event_id"])
                if sock.last >= sock.target and not sock.done_ns:
                    sock.done_ns = sock.hello_ns
                    storm.progress.set()
            elif kind == "resync_required":
                storm.resyncs += 1
                storm.violation(f"user {sock.user}: resync_required {frame['payload']}")
            elif kind == "error":
                storm.violation(f"user {sock.user}: error frame {frame['payload']}")
    except ConnectionClosed:
        pass
    return ws.close_code if ws.close_code is not None else 1006


async def wait_complete(sockets: list[Socket], storm: Storm, timeout: float) -> bool:
    return await wait_until(lambda: all(s.complete for s in sockets), storm, timeout)


async def wait_until(condition: Callable[[], bool], storm: Storm, timeout: float) -> bool:
    """Re-check `condition` whenever a socket makes progress (and twice a second)."""
    deadline = time.monotonic() + timeout
    while not condition():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        storm.progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(storm.progress.wait(), min(left, 0.5))
    return True


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def report(kind: str, sockets: list[Socket], storm: Storm, complete: bool, cpu: float) -> dict[str, Any]:
    return {
        "t": kind,
        "complete": complete,
        "sockets": len(sockets),
        "incomplete": sum(1 for s in sockets if not s.complete),
        "started_ns": [s.started_ns for s in sockets],
        "open_ns": [s.open_ns for s in sockets],
        "hello_ns": [s.hello_ns for s in sockets],
        "done_ns": [s.done_ns for s in sockets],
        "attempts": sum(s.attempts for s in sockets),
        "violations": storm.violations,
        "examples": storm.examples,
        "resyncs": storm.resyncs,
        "epoch_changes": storm.epoch_changes,
        "closes": dict(storm.closes),
        "reconnects": storm.reconnects,
        "cpu_s": cpu,
    }


async def main(url: str, entries: list[dict[str, Any]]) -> None:
    sockets = [Socket(int(e["u"]), e["user"]) for e in entries]
    commands = await stdin_lines()
    tasks: set[asyncio.Task[None]] = set()
    shared = Shared()
    while (cmd := await commands.get()) is not None:
        targets = {int(k): int(v) for k, v in (cmd.get("targets") or {}).items()}
        if cmd["t"] == "go":
            shared.storm = storm = Storm()
            parallel = int(cmd.get("parallel", 0))
            sem = asyncio.Semaphore(parallel) if parallel else None
            cpu0 = cpu_seconds()
            for sock in sockets:
                sock.reset(targets.get(sock.user, 0))
            for sock in sockets:  # first every socket is armed, then they all start
                if sock.parked.is_set():
                    sock.parked.clear()
                    sock.started_ns = now_ns()
                    task = asyncio.create_task(session(url, sock, shared, bool(cmd["resume"]), sem))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            complete = await wait_complete(sockets, storm, float(cmd["timeout"]))
            await asyncio.sleep(LINGER)
            storm.active = False
            emit(report("done", sockets, storm, complete, cpu_seconds() - cpu0))
        elif cmd["t"] == "wait":
            shared.storm = storm = Storm()
            storm.active = False
            for sock in sockets:
                sock.target = targets.get(sock.user, 0)
                sock.done_ns = 0
            complete = await wait_complete(sockets, storm, float(cmd["timeout"]))
            await asyncio.sleep(LINGER)
            emit(report("reached", sockets, storm, complete, 0.0))
        elif cmd["t"] == "parked":
            shared.storm = storm = Storm()
            storm.active = False
            emit({"t": "armed"})
            await wait_until(lambda: all(s.parked.is_set() for s in sockets), storm, float(cmd["timeout"]))
            emit(
                {
                    "t": "parked",
                    "count": sum(1 for s in sockets if s.parked.is_set()),
                    "closes": dict(storm.closes),
                    "violations": storm.violations,
                }
            )
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        entries_ = json.load(f)
    asyncio.run(main(sys.argv[1], entries_))
