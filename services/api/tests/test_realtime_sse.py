"""`GET /api/events/stream` (docs/realtime.md, SSE): the WebSocket's stream as Server-Sent
Events, read with a plain HTTP/1.1 client (httpx) parsing as EventSource does
(rag_testing.sseclient). The in-process hub (realtime_harness) on a real Postgres.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from rag_core.tokens import mint_token
from rag_testing.seed import make_workspace
from rag_testing.sseclient import SseStream, open_stream

from .realtime_harness import SECRET, Served, publish_events, served_hub, ws_client, ws_url

pytestmark = pytest.mark.anyio


def stream_url(srv: Served, user: uuid.UUID | None = None, *, ttl: int = 3600, **params: Any) -> str:
    query = {**({"token": mint_token(user, SECRET, ttl_seconds=ttl)} if user else {}), **params}
    return f"{srv.http_url}/api/events/stream?" + "&".join(f"{k}={v}" for k, v in query.items())


async def until_no_connection(srv: Served, timeout: float = 10) -> None:
    """Closing a stream reaches the server as a disconnect, a moment later."""
    deadline = time.monotonic() + timeout
    while srv.hub.connection_count:
        assert time.monotonic() < deadline, f"{srv.hub.connection_count} connections still open"
        await asyncio.sleep(0.02)


async def hello(stream: SseStream) -> dict[str, Any]:
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    message = await stream.message()
    assert message.event == "hello" and message.id is None
    assert message.retry is not None and 1000 <= message.retry <= 4000
    frame = message.frame()
    assert frame["type"] == "hello"
    return frame


async def test_events_arrive_as_sse_messages_with_id_type_and_the_websocket_frame(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv:
        async with (
            open_stream(stream_url(srv, user)) as stream,
            ws_client(ws_url(srv.ws_url, user)) as ws,
        ):
            frame = await hello(stream)
            assert frame["payload"]["user_id"] == str(user) and frame["payload"]["last_event_id"] == 0
            assert (await ws.frame())["type"] == "hello"
            await publish_events(database_url, workspace, 3)
            messages = await stream.events(3)
            on_ws = await ws.events(3)
        assert [m.id for m in messages] == ["1", "2", "3"]
        assert [m.event for m in messages] == ["document.status_updated"] * 3
        assert [m.frame() for m in messages] == on_ws  # the very frames of the WebSocket
        assert stream.last_event_id == "3"


async def test_auth_by_header_and_errors_before_the_stream_are_json(database_url: str) -> None:
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with served_hub(database_url) as srv:
        token = mint_token(user, SECRET)
        async with open_stream(stream_url(srv), headers={"Authorization": f"Bearer {token}"}) as stream:
            assert (await hello(stream))["payload"]["user_id"] == str(user)
        cases = [
            (stream_url(srv), {}, 401, "unauthorized"),
            (stream_url(srv, token="x.y.z"), {}, 401, "unauthorized"),
            (stream_url(srv, user, ttl=-10), {}, 401, "unauthorized"),
            (stream_url(srv, user), {"Last-Event-ID": "-1"}, 400, "invalid_parameter"),
            (stream_url(srv, user), {"Last-Event-ID": "9" * 5000}, 400, "invalid_parameter"),
            (stream_url(srv, user), {"Last-Event-ID": "+5"}, 400, "invalid_parameter"),
            (stream_url(srv, user), {"Last-Event-ID": "5_000"}, 400, "invalid_parameter"),
            (stream_url(srv, user, last_event_id="abc"), {}, 400, "invalid_parameter"),
            (stream_url(srv, user, epoch="a%00b"), {}, 422, "validation_error"),
        ]
        for url, headers, status, code in cases:
            async with open_stream(url, headers=headers) as stream:
                body = orjson.loads(await stream.response.aread())
                assert (stream.response.status_code, body["error"]["code"]) == (status, code), (url, body)
                assert stream.response.headers["content-type"] == "application/json"
        await until_no_connection(srv)


async def test_resume_by_last_event_id_after_a_disconnect_in_a_burst_has_no_gap_and_no_duplicate(
    database_url: str,
) -> None:
    """What EventSource does by itself: reconnect with the last `id:` it saw in the header."""
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    total = 400
    async with served_hub(database_url) as srv:
        seen: list[str] = []
        async with open_stream(stream_url(srv, user)) as stream:
            epoch = (await hello(stream))["payload"]["epoch"]
            burst = asyncio.create_task(publish_events(database_url, workspace, total, per_tx=4))
            seen += [m.id for m in await stream.events(37) if m.id]
            last = stream.last_event_id
        # Disconnected in the middle of the burst; the query's last_event_id is stale
        # (as in an EventSource URL): the header wins.
        url = stream_url(srv, user, last_event_id=1, epoch=epoch)
        async with open_stream(url, headers={"Last-Event-ID": last}) as stream:
            assert (await hello(stream))["payload"]["epoch"] == epoch
            await burst
            while len(seen) < total:
                message = await stream.message(20)
                if message.id is not None:
                    seen.append(message.id)
        assert seen == [str(i) for i in range(1, total + 1)]


async def test_another_epoch_gets_resync_required_then_live(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    await publish_events(database_url, workspace, 3)
    async with (
        served_hub(database_url) as srv,
        open_stream(stream_url(srv, user, epoch="not-this-one"), headers={"Last-Event-ID": "1"}) as stream,
    ):
        epoch = (await hello(stream))["payload"]["epoch"]
        resync = await stream.message()
        assert resync.event == "resync_required" and resync.id is None
        assert resync.frame()["payload"] == {"oldest_event_id": 1, "epoch": epoch}
        await publish_events(database_url, workspace, 1)
        assert [m.id for m in await stream.events(1)] == ["4"]  # live, nothing of 2..3 replayed


async def test_head_answers_the_headers_without_holding_a_stream(database_url: str) -> None:
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with served_hub(database_url) as srv, httpx.AsyncClient(timeout=10) as client:
        response = await client.head(stream_url(srv, user))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert srv.hub.connection_count == 0


async def test_keepalive_comments_and_no_client_frames_needed(database_url: str) -> None:
    """The dead-socket rule of the WebSocket does not apply: an SSE client never speaks."""
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url, heartbeat_seconds=0.2, sse_keepalive_seconds=0.2) as srv:
        async with open_stream(stream_url(srv, user)) as stream:
            await hello(stream)
            await asyncio.sleep(1.5)  # > 2 WebSocket heartbeats without a word from the client
            await publish_events(database_url, workspace, 1)
            assert [m.id for m in await stream.events(1)] == ["1"]
            assert stream.comments.count("keepalive") >= 3
            assert srv.hub.connection_count == 1


async def test_token_expiry_sends_token_expiring_then_a_4401_close_and_ends(database_url: str) -> None:
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with served_hub(database_url) as srv, open_stream(stream_url(srv, user, ttl=2)) as stream:
        await hello(stream)
        started = time.monotonic()
        expiring = await stream.message()
        assert expiring.event == "token_expiring"
        assert set(expiring.frame()["payload"]) == {"expires_at"}
        close = await stream.message(10)
        assert close.event == "close" and close.id is None
        assert close.frame() == {"type": "close", "payload": {"code": 4401, "reason": "token expired"}}
        assert time.monotonic() - started < 8
        with pytest.raises(EOFError):
            await stream.message(5)  # the response ended
        await until_no_connection(srv)


async def test_websockets_and_sse_streams_share_the_per_user_cap(database_url: str) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    make_workspace(database_url, [user, other])
    async with served_hub(database_url, max_per_user=2) as srv:
        async with ws_client(ws_url(srv.ws_url, user)) as ws, open_stream(stream_url(srv, user)) as first:
            assert (await ws.frame())["type"] == "hello"
            await hello(first)
            async with open_stream(stream_url(srv, user)) as refused:
                body = orjson.loads(await refused.response.aread())
                assert refused.response.status_code == 429
                assert body["error"]["code"] == "too_many_connections"
            async with ws_client(ws_url(srv.ws_url, user)) as refused_ws:
                code, _, frames = await refused_ws.until_closed(5)
                assert (code, frames) == (4429, [])
            async with open_stream(stream_url(srv, other)) as theirs:  # another user: unaffected
                await hello(theirs)
        await until_no_connection(srv)


async def test_a_client_that_stops_reading_is_ended_with_4408_and_the_listener_never_waits(
    database_url: str,
) -> None:
    """Backpressure as on the WebSocket: hypercorn's writes wait for the socket to drain, the
    backlog grows past WS_SEND_QUEUE_MAX, the stream ends; the client resumes and loses nothing."""
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    closes_4408 = REGISTRY.get_sample_value("rag_api_sse_closes_total", {"code": "4408"}) or 0.0
    async with served_hub(database_url, queue_max=50) as srv:
        _, writer = await asyncio.open_connection("127.0.0.1", int(srv.http_url.rsplit(":", 1)[1]))
        token = mint_token(user, SECRET)
        writer.write(
            f"GET /api/events/stream?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )  # and then never read
        await writer.drain()
        deadline = time.monotonic() + 10
        while srv.hub.connection_count == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await publish_events(database_url, workspace, 400, per_tx=20, size=20_000)
        await until_no_connection(srv, 30)  # the stuck stream was ended
        assert REGISTRY.get_sample_value("rag_api_sse_closes_total", {"code": "4408"}) == closes_4408 + 1
        writer.close()
        # The resume brings everything from where the stuck client was (here: the start).
        async with open_stream(stream_url(srv, user), headers={"Last-Event-ID": "0"}) as stream:
            await hello(stream)
            got = [m.id for m in await stream.events(400, timeout=60)]
        assert got == [str(i) for i in range(1, 401)]


async def test_a_replica_shutting_down_ends_streams_with_a_1001_close(database_url: str) -> None:
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with served_hub(database_url) as srv, open_stream(stream_url(srv, user)) as stream:
        await hello(stream)
        await srv.hub.close_connections()
        close = await stream.message()
        assert close.frame()["payload"] == {"code": 1001, "reason": "server shutting down"}
        with pytest.raises(EOFError):
            await stream.message(5)
