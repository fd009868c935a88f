"""WebSocket abuse against a real `rag-api` process (hypercorn), as an attacker would send it.

- 25 sockets of one user: 20 work and keep receiving events, 5 are accepted then closed
  with 4429 (no frame); another user is unaffected; closing one socket frees a slot.
- A client frame above WS_MAX_FRAME_BYTES: closed with 1009; one just below is answered.
- A malformed `last_event_id` (non-digits, 5,000 digits, above 2^63-1, negative, `²`, NUL):
  `hello`, then an `invalid_parameter` error frame, and the connection stays open and live.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote
from uuid import UUID

import psutil
import pytest
from psycopg import AsyncConnection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rag_core.events import DocumentStatusUpdated, Event
from rag_eventbus import publish
from rag_testing.pytest_plugin import module_system
from rag_testing.system import System
from rag_testing.wsclient import FrameClient

pytestmark = pytest.mark.anyio

MAX_PER_USER = 20  # the default WS_MAX_CONNECTIONS_PER_USER
MAX_FRAME = 65536  # the default WS_MAX_FRAME_BYTES


@pytest.fixture(scope="module")
def system(pg_admin_dsn: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One api process (no workers) with the default limits, on a database and bucket of this module."""
    with module_system(
        pg_admin_dsn, s3_server, tmp_path_factory.mktemp("adv-ws"), "adv-ws", workers=False
    ) as started:
        yield started


def member_with_workspace(system: System) -> tuple[UUID, str]:
    user = uuid.uuid4()
    response = system.client(user).post("/api/workspaces", json={"name": "ws-abuse"})
    assert response.status_code == 201
    return user, response.json()["id"]


async def publish_one(system: System, workspace: str) -> None:
    """One event for every member of `workspace`, from this process."""
    event = DocumentStatusUpdated(
        workspace_id=UUID(workspace), document_id=uuid.uuid4(), status="error", error="probe"
    )
    async with await AsyncConnection.connect(system.env["DATABASE_URL"]) as conn, conn.transaction():
        await publish(conn, [Event.of(event)])


async def open_socket(system: System, user: UUID, query: str = "") -> ClientConnection:
    url = f"{system.api.ws_url}?token={system.token(user)}{query}"
    return await connect(url, open_timeout=10, close_timeout=2, max_size=None)


async def first_frame_or_close(ws: ClientConnection) -> dict[str, Any] | int:
    """The first frame (skipping nothing), or the close code if the server closed first."""
    try:
        frame = await FrameClient(ws).frame(timeout=10)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server sent no close frame"
        return closed.rcvd.code
    return frame


@asynccontextmanager
async def sockets(system: System, user: UUID, n: int) -> AsyncIterator[list[ClientConnection]]:
    opened = list(await asyncio.gather(*(open_socket(system, user) for _ in range(n))))
    try:
        yield opened
    finally:
        for ws in opened:
            with contextlib.suppress(Exception):
                await ws.close()


async def test_25_sockets_of_one_user_20_work_5_are_closed_4429(system: System) -> None:
    user, workspace = member_with_workspace(system)
    other, other_workspace = member_with_workspace(system)
    async with sockets(system, user, 25) as opened:
        firsts = await asyncio.gather(*(first_frame_or_close(ws) for ws in opened))
        working = [ws for ws, f in zip(opened, firsts, strict=True) if isinstance(f, dict)]
        closes = [f for f in firsts if not isinstance(f, dict)]
        assert all(f["type"] == "hello" for f in firsts if isinstance(f, dict))
        assert len(working) == MAX_PER_USER and closes == [4429] * 5

        # The 20 are untouched: every one of them receives the next event.
        await publish_one(system, workspace)
        events = await asyncio.gather(*(FrameClient(ws).frame(timeout=10) for ws in working))
        assert all(e["type"] == "document.status_updated" for e in events)

        # Another user is not affected by this user's sockets.
        async with sockets(system, other, 1) as (other_ws,):
            assert (await FrameClient(other_ws).frame())["type"] == "hello"
            await publish_one(system, other_workspace)
            assert (await FrameClient(other_ws).frame())["type"] == "document.status_updated"

        # Still full: one more is refused; closing one frees its slot for a new one.
        extra = await open_socket(system, user)
        assert await first_frame_or_close(extra) == 4429
        await working.pop().close()
        for _ in range(50):  # the server unregisters on the close handshake
            replacement = await open_socket(system, user)
            first = await first_frame_or_close(replacement)
            if first != 4429:
                break
            await asyncio.sleep(0.1)
        assert isinstance(first, dict) and first["type"] == "hello"
        await publish_one(system, workspace)
        for ws in [*working, replacement]:
            assert (await FrameClient(ws).frame(timeout=10))["type"] == "document.status_updated"
        await replacement.close()


async def closed_with(ws: ClientConnection, timeout: float = 10) -> int | None:
    """The code of the server's close frame once it arrived (None: none within `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.wait_for(ws.recv(), deadline - asyncio.get_running_loop().time())
    received = ws.protocol.close_rcvd
    return None if received is None else received.code


async def test_a_frame_above_ws_max_frame_bytes_closes_1009(system: System) -> None:
    user, _ = member_with_workspace(system)
    async with sockets(system, user, 1) as (ws,):
        client = FrameClient(ws)
        assert (await client.frame())["type"] == "hello"
        await ws.send("x" * (MAX_FRAME - 10))  # below the limit: not JSON, answered
        assert (await client.frame())["payload"]["code"] == "invalid_json"
        await ws.send("x" * (MAX_FRAME + 1))
        assert await closed_with(ws) == 1009
    # Fragmented: many small fragments of one message count together. The last fragment is
    # the one that crosses the limit, so that the api has read everything the client sent
    # when it closes (unread bytes would make its kernel reset the connection, and the reset
    # can overtake the close frame).
    async with sockets(system, user, 1) as (ws,):
        assert (await FrameClient(ws).frame())["type"] == "hello"
        await ws.send(["y" * 16384] * (MAX_FRAME // 16384) + ["y"])
        assert await closed_with(ws) == 1009


async def test_a_client_that_streams_after_the_1009_does_not_grow_the_api(system: System) -> None:
    """One 200 MB frame on a raw socket: the api closes at the limit and keeps nothing."""
    user, _ = member_with_workspace(system)
    process = psutil.Process(system.api.process.pid)
    rss_before = process.memory_info().rss / 2**20
    reader, writer = await asyncio.open_connection("127.0.0.1", system.api.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /api/ws?token={system.token(user)} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    size = 200 * 2**20
    writer.write(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", size) + b"\0\0\0\0")  # masked, key 0
    sent = 0
    with contextlib.suppress(OSError):
        while sent < size:
            writer.write(b"a" * 2**20)
            await writer.drain()
            sent += 2**20
    writer.close()
    rss_after = process.memory_info().rss / 2**20
    print(f"sent {sent / 2**20:.0f} MiB of a 200 MiB frame; api RSS {rss_before:.1f} -> {rss_after:.1f} MB")
    assert sent < size, "the api read the whole 200 MB frame"
    assert rss_after - rss_before < 20


MALFORMED_LAST_EVENT_IDS = ["abc", "9" * 5000, str(2**63), "-1", "²", "1\x00", "1.5", "+3", " 7"]


async def test_a_malformed_last_event_id_is_an_error_frame_and_the_socket_stays_live(system: System) -> None:
    user, workspace = member_with_workspace(system)
    for raw in MALFORMED_LAST_EVENT_IDS:
        ws = await open_socket(system, user, f"&last_event_id={quote(raw, safe='')}")
        try:
            client = FrameClient(ws)
            assert (await client.frame())["type"] == "hello", raw[:20]
            error = await client.frame()
            assert error["type"] == "error" and error["payload"]["code"] == "invalid_parameter", raw[:20]
            assert isinstance(error["payload"]["message"], str)
            await client.send({"type": "ping"})
            assert await client.frame() == {"type": "pong"}
            await publish_one(system, workspace)
            assert (await client.frame())["type"] == "document.status_updated", "live after the error"
        finally:
            await ws.close()


async def test_the_largest_valid_last_event_id_is_a_resync_not_an_error(system: System) -> None:
    user, _ = member_with_workspace(system)
    ws = await open_socket(system, user, f"&last_event_id={2**63 - 1}")
    try:
        client = FrameClient(ws)
        assert (await client.frame())["type"] == "hello"
        assert (await client.frame())["type"] == "resync_required"
    finally:
        await ws.close()
