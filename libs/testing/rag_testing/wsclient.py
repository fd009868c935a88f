"""WebSocket test clients: `EventCollector` keeps frames in the background, `FrameClient` reads on demand."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class EventCollector:
    """Connects to /api/ws as one user and keeps every frame it receives."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.url = f"{ws_url}?token={token}"
        self.frames: list[dict[str, Any]] = []
        self._conn: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventCollector:
        self._conn = await connect(self.url, max_size=None)
        self._task = asyncio.create_task(self._read())
        await self.wait_for(lambda f: f.get("type") == "hello", timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._conn is not None:
            await self._conn.close()

    async def _read(self) -> None:
        assert self._conn is not None
        async for message in self._conn:
            self.frames.append(orjson.loads(message))

    @property
    def events(self) -> list[dict[str, Any]]:
        """Numbered events only (no hello/pong)."""
        return [f for f in self.frames if "id" in f and f.get("type") not in ("hello", "pong")]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for frame in self.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = len(self.frames)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching frame in {timeout}s; last frames: {self.frames[-5:]}")

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout}s; last frames: {self.frames[-5:]}")
            await asyncio.sleep(0.02)


class FrameClient:
    """Pull-style reading of one WebSocket's JSON frames (server pings skipped by default)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def frame(self, timeout: float = 10.0, skip_pings: bool = True) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if not (skip_pings and frame.get("type") == "ping"):
                return frame

    async def events(self, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The next `n` numbered events; fails on anything else."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            frame = await self.frame(max(0.01, deadline - time.monotonic()))
            assert "id" in frame, f"expected an event, got {frame}"
            out.append(frame)
        return out

    async def silent(self, seconds: float) -> None:
        """Nothing but server pings arrives for `seconds`."""
        with contextlib.suppress(TimeoutError):
            frame = await self.frame(seconds)
            raise AssertionError(f"unexpected frame {frame}")

    async def send(self, obj: Any) -> None:
        await self.ws.send(obj if isinstance(obj, str | bytes) else orjson.dumps(obj).decode())

    async def until_closed(self, timeout: float = 20.0) -> tuple[int, str, list[dict[str, Any]]]:
        """Read everything until the server's close frame: (close code, reason, frames read)."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                seen.append(orjson.loads(await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())))
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                raise AssertionError("the server sent no close frame") from None
            return closed.rcvd.code, closed.rcvd.reason, seen
