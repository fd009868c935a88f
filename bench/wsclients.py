"""Child process: many WebSocket clients (or a raw LISTEN), so the api process is measured alone.

    python -m bench.wsclients ws URL USERS_FILE COMPRESSION   # one socket per user
    python -m bench.wsclients raw DSN USERS_FILE               # LISTEN bench_raw (the floor)

Each socket authenticates with a token for its user, waits for `hello`, answers server
pings, records every event frame as (user index, id, wall clock ns) and checks the ids:
a repeated id is a duplicate, a jump is a gap (lost). A socket the server closes (4408:
too slow) reconnects with `last_event_id` as the contract says, and is counted.
COMPRESSION is `deflate` (what browsers offer) or `none`.

Prints `{"t":"ready", ...}` once every socket has its hello. Commands on stdin:
`{"t":"collect","expect":N,"timeout":S}` → `{"t":"received","events":[...],...}` once N
events arrived (or S seconds passed), then the buffers start afresh. Exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from typing import Any

import orjson
import psycopg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import emit, now_ns, stdin_lines
from rag_core.tokens import mint_token
from rag_testing.system import TEST_JWT_SECRET

CONNECT_PARALLEL = 100
PONG = '{"type":"pong"}'


class Recorder:
    def __init__(self, users: int) -> None:
        self.events: list[tuple[int, int, int]] = []
        self.last = [0] * users
        self.dups = 0
        self.gaps = 0
        self.closes = 0
        self.reconnects = 0
        self.arrived = asyncio.Event()
        self.expect = 0

    def record(self, user: int, event_id: int, ns: int) -> None:
        last = self.last[user]
        if event_id <= last:
            self.dups += 1
            return
        if event_id != last + 1 and last != 0:
            self.gaps += event_id - last - 1
        self.last[user] = event_id
        self.events.append((user, event_id, ns))
        if self.expect and len(self.events) >= self.expect:
            self.arrived.set()


async def client(
    url: str,
    user: int,
    user_id: str,
    rec: Recorder,
    compression: str | None,
    hello: asyncio.Event,
    sem: asyncio.Semaphore,
) -> None:
    token = mint_token(uuid.UUID(user_id), TEST_JWT_SECRET, 24 * 3600)
    first = True
    while True:
        query = f"?token={token}"
        if not first:
            query += f"&last_event_id={rec.last[user]}"
        try:
            if first:
                async with sem:
                    ws = await connect(url + query, open_timeout=60, compression=compression, max_queue=None)
                    frame = orjson.loads(await ws.recv())
                    assert frame["type"] == "hello", frame
                first = False
                hello.set()
            else:
                ws = await connect(url + query, open_timeout=60, compression=compression, max_queue=None)
            await read(ws, user, rec)
        except ConnectionClosed:
            rec.closes += 1
            rec.reconnects += 1
            continue
        except OSError:
            if first:
                raise
            await asyncio.sleep(0.1)
            rec.reconnects += 1


async def read(ws: ClientConnection, user: int, rec: Recorder) -> None:
    async for message in ws:
        ns = now_ns()
        frame = orjson.loads(message)
        event_id = frame.get("id")
        if event_id is not None:
            rec.record(user, event_id, ns)
        elif frame.get("type") == "ping":
            await ws.send(PONG)


async def raw_listener(dsn: str, rec: Recorder, ready: asyncio.Event) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("LISTEN bench_raw")
        ready.set()
        async for notify in conn.notifies():
            ns = now_ns()
            for user, seq, _type, _payload in orjson.loads(notify.payload)["e"]:
                rec.record(user, seq, ns)


async def main(mode: str, target: str, users: list[dict[str, str]], compression: str) -> None:
    rec = Recorder(len(users))
    commands = await stdin_lines()
    tasks: list[asyncio.Task[None]] = []
    started = time.perf_counter()
    failed = 0
    if mode == "raw":
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(raw_listener(target, rec, ready)))
        await ready.wait()
    else:
        sem = asyncio.Semaphore(CONNECT_PARALLEL)
        hellos = [asyncio.Event() for _ in users]
        comp = None if compression == "none" else "deflate"
        for i, u in enumerate(users):
            tasks.append(asyncio.create_task(client(target, i, u["user"], rec, comp, hellos[i], sem)))
        pending = [asyncio.create_task(h.wait()) for h in hellos]
        while pending:
            _, pending_set = await asyncio.wait(pending, timeout=1.0)
            pending = list(pending_set)
            dead = sum(1 for t in tasks if t.done())
            if dead and len(pending) <= dead:
                failed = dead
                for p in pending:
                    p.cancel()
                break
    emit(
        {
            "t": "ready",
            "connected": len(users) - failed,
            "failed": failed,
            "seconds": time.perf_counter() - started,
            "error": next((repr(t.exception()) for t in tasks if t.done() and t.exception()), None),
        }
    )
    while (cmd := await commands.get()) is not None:
        if cmd["t"] == "collect":
            rec.expect = int(cmd["expect"])
            if len(rec.events) < rec.expect:
                rec.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(rec.arrived.wait(), float(cmd["timeout"]))
            await asyncio.sleep(float(cmd.get("linger", 0.2)))  # duplicates arriving late
            emit(
                {
                    "t": "received",
                    "events": rec.events,
                    "dups": rec.dups,
                    "gaps": rec.gaps,
                    "closes": rec.closes,
                    "reconnects": rec.reconnects,
                }
            )
            rec.events = []
            rec.dups = rec.gaps = rec.closes = rec.reconnects = 0
            rec.expect = 0
            if mode == "raw":
                rec.last = [0] * len(users)  # each publisher numbers its raw events from 1
        elif cmd["t"] == "ping":
            emit({"t": "pong"})
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    args: list[Any] = sys.argv[1:]
    with open(args[2]) as f:
        users_ = json.load(f)
    asyncio.run(main(args[0], args[1], users_, args[3] if len(args) > 3 else "deflate"))
