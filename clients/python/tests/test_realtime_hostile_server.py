"""The client's frame rules against a scripted server on a real socket: what a correct
server never sends (duplicates, a gap, junk frames) and the endings it does send (4408,
1011, silence), each met with the reconnect the protocol asks for."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve

from rag_engine_client import Backoff, Realtime

pytestmark = pytest.mark.anyio

Script = Callable[[ServerConnection, int], Awaitable[None]]


def hello(last_event_id: int, epoch: str = "e1") -> str:
    return json.dumps(
        {"type": "hello", "payload": {"user_id": "u", "epoch": epoch, "last_event_id": last_event_id}}
    )


def event(event_id: int) -> str:
    return json.dumps(
        {"id": event_id, "type": "document.created", "payload": {"n": event_id}, "created_at": "t"}
    )


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.queries: list[dict[str, list[str]]] = []
        self.received: list[str] = []
        self.url = ""

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.queries.append(parse_qs(urlsplit(ws.request.path).query))
        await self.script(ws, len(self.queries) - 1)
        async for message in ws:
            self.received.append(str(message))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedServer]:
        async with serve(self.handle, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            yield self


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not met in {timeout} s"
        await asyncio.sleep(0.02)


async def test_duplicates_and_junk_are_dropped_and_a_gap_resumes_from_the_last_id(recorder: Any) -> None:
    async def script(ws: ServerConnection, index: int) -> None:
        if index == 0:
            for frame in (hello(0), event(1), event(2), event(3), event(5)):  # 4 is missing
                await ws.send(frame)
            return
        await ws.send(hello(6))
        for frame in (event(2), event(3), event(4), event(4), event(5)):
            await ws.send(frame)
        junk = [
            "not json",
            "[1, 2]",
            '"text"',
            '{"id": "6", "type": "x"}',
            '{"id": true}',
            '{"type": "mystery"}',
        ]
        for frame in junk:
            await ws.send(frame)
        await ws.send(event(6))

    async with ScriptedServer(script).running() as server:
        realtime = Realtime(server.url, "t", transport="websocket", **recorder.hooks())
        async with realtime:
            await until(lambda: len(recorder.events) >= 6)
            await asyncio.sleep(0.5)
        assert recorder.ids == [1, 2, 3, 4, 5, 6]
        assert server.queries[1] == {"last_event_id": ["3"], "epoch": ["e1"]}  # resumed before the gap
        assert len(recorder.ready) == 1  # the resume is not a fresh start: no second reload


async def test_a_server_ping_is_answered_and_silence_reconnects(recorder: Any) -> None:
    async def script(ws: ServerConnection, index: int) -> None:
        await ws.send(hello(0))
        await ws.send(json.dumps({"type": "ping"}))
        # then nothing at all: a peer that vanished without a FIN looks like this

    async with ScriptedServer(script).running() as server:
        realtime = Realtime(server.url, "t", transport="websocket", heartbeat_seconds=0.4, **recorder.hooks())
        async with realtime:
            await until(lambda: len(server.queries) >= 2)
        assert json.loads(server.received[0]) == {"type": "pong"}
        assert any(
            detail.startswith("4001 silent") for state, detail in recorder.states if state == "reconnecting"
        )


async def test_4408_reconnects_at_once_and_1011_backs_off(recorder: Any) -> None:
    async def script(ws: ServerConnection, index: int) -> None:
        await ws.send(hello(0))
        await ws.close(4408 if index == 0 else 1011, "send queue full" if index == 0 else "server error")

    async with ScriptedServer(script).running() as server:
        backoff = Backoff(first=40, maximum=40)
        realtime = Realtime(server.url, "t", transport="websocket", backoff=backoff, **recorder.hooks())
        async with realtime:
            await until(lambda: len(server.queries) == 2)  # at once, not after 20..40 s
            await until(lambda: sum(s == "reconnecting" for s, _ in recorder.states) == 2)
            waits = [d for s, d in recorder.states if s == "reconnecting"]
            assert waits[0] == "4408 send queue full: at once"
            assert waits[1].startswith("1011 server error: in ")
            assert 20 <= float(waits[1].split(" in ")[1].removesuffix(" s")) <= 40
            await asyncio.sleep(1)
            assert len(server.queries) == 2


async def test_close_from_a_hook_stops_without_reconnecting(recorder: Any) -> None:
    async def script(ws: ServerConnection, index: int) -> None:
        await ws.send(hello(0))
        await ws.send(event(1))

    async with ScriptedServer(script).running() as server:
        realtime: Realtime

        async def stop_at_first(received: Any) -> None:
            recorder.events.append(received)
            await realtime.close()

        realtime = Realtime(server.url, "t", transport="websocket", on_event=stop_at_first)
        realtime.start()
        await until(lambda: realtime.state == "stopped")
        await asyncio.sleep(1)
        assert recorder.ids == [1] and len(server.queries) == 1


async def test_a_malformed_hello_or_resync_is_not_trusted_with_the_resume_point(recorder: Any) -> None:
    bad_frames = [
        json.dumps({"type": "hello", "payload": {"user_id": "u", "last_event_id": 0}}),  # no epoch
        json.dumps({"type": "hello", "payload": "everything"}),
        json.dumps({"type": "hello", "payload": {"epoch": "e1", "last_event_id": -5}}),
    ]

    async def script(ws: ServerConnection, index: int) -> None:
        if index < len(bad_frames):
            await ws.send(bad_frames[index])
            return
        if index == len(bad_frames):
            await ws.send(hello(0))
            await ws.send(event(1))
            resync = {"type": "resync_required", "payload": {"oldest_event_id": "1", "epoch": "e2"}}
            await ws.send(json.dumps(resync))
            return
        await ws.send(hello(1))
        await ws.send(event(2))

    async with ScriptedServer(script).running() as server:
        backoff = Backoff(first=0.05, maximum=0.1)
        realtime = Realtime(server.url, "t", transport="websocket", backoff=backoff, **recorder.hooks())
        async with realtime:
            await until(lambda: len(recorder.events) >= 2)
        malformed = [d for s, d in recorder.states if s == "reconnecting" and "malformed" in d]
        assert len(malformed) == 4  # three hellos, then the resync frame with a string id
        assert recorder.resyncs == []
        assert recorder.ids == [1, 2]  # and the resume after the bad resync went on from 1
        assert server.queries[4] == {"last_event_id": ["1"], "epoch": ["e1"]}


async def test_wait_returns_quietly_after_close_and_the_iterator_ends() -> None:
    async def script(ws: ServerConnection, index: int) -> None:
        await ws.send(hello(0))

    async with ScriptedServer(script).running() as server:
        realtime = Realtime(server.url, "t", transport="websocket")
        waiter = asyncio.create_task(realtime.start().wait())
        await until(lambda: realtime.state == "live")
        await realtime.close()
        await asyncio.wait_for(waiter, 10)
        assert [e async for e in realtime] == []
        closed_early = Realtime(server.url, "t")
        closed_early.start()
        await closed_early.close()  # before its task ever ran
        assert [e async for e in closed_early] == []
