"""Live auth: a socket closes with 4401 when its token expires (token_expiring first) unless
an `auth` frame brings a fresh token of the same user.

End to end on a real `rag-api` process with 10 s tokens; the malformed frames on the
in-process hub (realtime_harness).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from websockets.asyncio.client import connect

from rag_core.tokens import mint_token
from rag_testing.seed import make_workspace
from rag_testing.wsclient import FrameClient

from .realtime_harness import SECRET, publish_events, served_hub, ws_client, ws_url

pytestmark = pytest.mark.anyio


def expires_at(frame: dict[str, Any]) -> float:
    return datetime.fromisoformat(frame["payload"]["expires_at"]).timestamp()


async def test_a_10s_token_expires_4401_unless_refreshed_and_bad_refreshes_close_4401(api: Any) -> None:
    user, other = api.user(), api.user()
    workspace = user.create_workspace()["id"]

    async def open_socket(token: str) -> tuple[Any, FrameClient]:
        ws = await connect(f"{api.ws_url}?token={token}", open_timeout=10, close_timeout=2)
        client = FrameClient(ws)
        assert (await client.frame())["type"] == "hello"
        return ws, client

    short = api.token(user.id, ttl_seconds=10)
    started = time.time()
    sockets = [await open_socket(short) for _ in range(4)]
    (_, expiring), (_, refreshed), (_, garbage), (_, foreign) = sockets
    for _, client in sockets:  # less than 60 s left: at once
        frame = await client.frame()
        assert frame["type"] == "token_expiring" and abs(expires_at(frame) - (started + 10)) < 3

    await refreshed.send({"type": "auth", "payload": {"token": api.token(user.id, ttl_seconds=3600)}})
    ok = await refreshed.frame()
    assert ok["type"] == "auth_ok" and expires_at(ok) > time.time() + 3000
    await garbage.send({"type": "auth", "payload": {"token": "not-a-jwt"}})
    await foreign.send({"type": "auth", "payload": {"token": api.token(other.id)}})
    for client, reason in ((garbage, "invalid token"), (foreign, "token of another user")):
        code, why, frames = await client.until_closed(timeout=5)
        assert (code, why, frames) == (4401, reason, [])

    code, why, _ = await expiring.until_closed(timeout=15)
    assert (code, why) == (4401, "token expired")
    assert 9 <= time.time() - started < 14

    # The refreshed socket stays past the first token's expiry, and delivers.
    await refreshed.silent(max(0.5, started + 11 - time.time()))
    await publish_events(api.database_url, workspace, 1)
    (event,) = await refreshed.events(1)
    assert event["type"] == "document.status_updated"
    for ws, _ in sockets:
        await ws.close()


async def test_malformed_auth_frames_get_error_frames_and_the_timer_restarts(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv:
        token = mint_token(user, SECRET, ttl_seconds=3600)
        async with ws_client(f"{srv.ws_url}?token={token}") as client:
            await client.frame()
            for bad in (
                {"type": "auth"},
                {"type": "auth", "payload": {"token": 5}},
                {"type": "auth", "payload": []},
            ):
                await client.send(bad)
                frame = await client.frame()
                assert frame["type"] == "error" and frame["payload"]["code"] == "invalid_frame"
            # A refresh to a shorter token: the warning comes at once, for the new exp.
            await client.send(
                {"type": "auth", "payload": {"token": mint_token(user, SECRET, ttl_seconds=30)}}
            )
            assert (await client.frame())["type"] == "auth_ok"
            frame = await client.frame()
            assert frame["type"] == "token_expiring" and expires_at(frame) < time.time() + 31
            await publish_events(database_url, workspace, 1)
            assert [e["id"] for e in await client.events(1)] == [1]
        # An empty token is an invalid token, not a malformed frame.
        async with ws_client(ws_url(srv.ws_url, user)) as client:
            await client.frame()
            await client.send({"type": "auth", "payload": {"token": ""}})
            assert (await client.until_closed(timeout=5))[:2] == (4401, "invalid token")
        await asyncio.sleep(0)
