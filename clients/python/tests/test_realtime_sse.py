"""Realtime over SSE (`GET /api/events/stream`) against a real api: the same events as on
the WebSocket, a token refreshed by reconnecting (resume, nothing lost), a bad token, and
the fallback from a WebSocket that a proxy refuses to upgrade."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from rag_engine_client import RagClient, Realtime, RealtimeUnauthorized
from rag_testing.faults import TcpProxy
from rag_testing.system import System

pytestmark = pytest.mark.anyio

UPLOADED = ["document.created", "job.status_updated"]  # with no worker running


async def upload(rest: RagClient, workspace: str) -> None:
    await rest.upload(workspace, [(f"{uuid.uuid4()}.txt", uuid.uuid4().hex.encode(), "text/plain")])


class NoWebSocketProxy:
    """A forwarding proxy that answers every WebSocket upgrade (`GET /api/ws`) 403, as the
    corporate proxies do that SSE exists for; every other request passes through."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refused = 0
        self.passed = 0
        self.url = ""

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = await reader.readline()
        if request_line.startswith(b"GET /api/ws"):
            self.refused += 1
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        self.passed += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        up_writer.write(request_line)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[NoWebSocketProxy]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield self
        finally:
            server.close()


async def test_forced_sse_delivers_the_same_events(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    async with (
        RagClient(api.api.url, api.token(user)) as rest,
        rest.realtime(transport="sse", **recorder.hooks()) as realtime,
    ):
        await recorder.live(realtime)
        assert realtime.transport == "sse"
        assert [r["last_event_id"] for r in recorder.ready] == [0]
        workspace = await rest.create_workspace("w")
        await upload(rest, workspace["id"])
        await recorder.until(lambda: len(recorder.events) == 3, what="3 events over SSE")
        assert recorder.types == ["workspace.member_added", *UPLOADED]
        assert recorder.ids == [1, 2, 3]
        assert realtime.transport == "sse" and realtime.connections == 1


async def test_sse_resumes_after_the_network_dropped(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    proxy = TcpProxy("127.0.0.1", api.api.port).start()
    try:
        async with (
            RagClient(api.api.url, api.token(user)) as rest,
            Realtime(proxy.url, api.token(user), transport="sse", **recorder.hooks()) as realtime,
        ):
            await recorder.live(realtime)
            workspace = await rest.create_workspace("w")
            await recorder.until(lambda: len(recorder.events) == 1, what="before the cut")
            proxy.cut()
            await recorder.until(lambda: realtime.state != "live", what="the drop noticed")
            await upload(rest, workspace["id"])
            await upload(rest, workspace["id"])
            proxy.restore()
            await recorder.until(lambda: len(recorder.events) >= 5, timeout=90, what="resumed")
            await asyncio.sleep(1)
            assert recorder.ids == [1, 2, 3, 4, 5]
            assert realtime.connections >= 2 and len(recorder.ready) == 1 and recorder.resyncs == []
    finally:
        proxy.stop()


async def test_on_sse_a_new_token_is_a_reconnect_that_resumes(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    handed: list[str] = []

    def provider() -> str:
        token = api.token(user, ttl_seconds=10 if not handed else 3600)
        handed.append(token)
        return token

    async with (
        RagClient(api.api.url, api.token(user)) as rest,
        Realtime(api.api.url, provider, transport="sse", **recorder.hooks()) as realtime,
    ):
        await recorder.until(lambda: realtime.connections == 2, what="reconnected with the new token")
        workspace = await rest.create_workspace("w")
        await asyncio.sleep(12)  # past the first token's exp: the stream must not end now
        await upload(rest, workspace["id"])
        await recorder.until(lambda: len(recorder.events) == 3, what="events on the new token")
        assert recorder.ids == [1, 2, 3]
        assert realtime.connections == 2  # one reconnect for the refresh, no 4401 at the old exp
        assert len(recorder.ready) == 1 and recorder.resyncs == []
        assert all(detail != "4401: with a new token" for _, detail in recorder.states)


async def test_sse_with_a_bad_token_stops_unauthorized(api: System, recorder: Any) -> None:
    realtime = Realtime(api.api.url, "not-a-jwt", transport="sse", **recorder.hooks())
    async with realtime:
        with pytest.raises(RealtimeUnauthorized):
            await asyncio.wait_for(realtime.wait(), 60)
    assert realtime.connections == 0


async def test_falls_back_to_sse_when_the_websocket_upgrade_is_refused(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    async with NoWebSocketProxy(api.api.port).running() as proxy:
        async with (
            RagClient(api.api.url, api.token(user)) as rest,
            Realtime(proxy.url, api.token(user), fallback_after=2, **recorder.hooks()) as realtime,
        ):
            await recorder.live(realtime, timeout=90)
            assert realtime.transport == "sse"
            assert proxy.refused == 2  # two refused upgrades, then SSE
            workspace = await rest.create_workspace("w")
            await upload(rest, workspace["id"])
            await recorder.until(lambda: len(recorder.events) == 3, what="events after the fallback")
            assert recorder.ids == [1, 2, 3]
            assert any("upgrade refused: HTTP 403" in detail for _, detail in recorder.states)
