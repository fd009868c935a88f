"""The hub's protocol and flow control: hello, ping, refusals, isolation, heartbeats, a stuck socket."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
import orjson
import pytest
from prometheus_client import REGISTRY

from rag_api.metrics import WEBSOCKET_CLOSES, WEBSOCKETS_OPEN
from rag_api.realtime import connection
from rag_api.realtime.connection import Connection
from rag_core.tokens import TokenClaims, mint_token
from rag_eventbus import DeliveredEvent, EventLog
from rag_testing.seed import make_workspace

from .realtime_harness import SECRET, Served, publish_events, served_hub, ws_client, ws_url

pytestmark = pytest.mark.anyio


# -- protocol ------------------------------------------------------------------------


async def test_hello_ping_pong_malformed_frames_and_live_events(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    await publish_events(database_url, workspace, 3)
    async with served_hub(database_url) as srv, ws_client(ws_url(srv.ws_url, user)) as client:
        hello = await client.frame()
        epoch = hello["payload"]["epoch"]
        assert isinstance(epoch, str) and epoch
        assert hello == {
            "type": "hello",
            "payload": {"user_id": str(user), "epoch": epoch, "last_event_id": 3},
        }
        await client.send({"type": "ping"})
        assert await client.frame() == {"type": "pong"}
        for bad, code in [
            ("not json", "invalid_json"),
            ("[1, 2]", "invalid_frame"),
            ('{"type": 7}', "invalid_frame"),
            ('{"type": "subscribe"}', "unknown_type"),
            (b"\xff\x00", "invalid_json"),
        ]:
            await client.send(bad)
            frame = await client.frame()
            assert frame["type"] == "error" and frame["payload"]["code"] == code, (bad, frame)
            assert frame["payload"]["message"]
        await client.send({"type": "pong"})  # an answer to a server ping: accepted silently
        await client.send({"type": "ping"})
        assert await client.frame() == {"type": "pong"}, "the connection stayed open and in order"

        await publish_events(database_url, workspace, 2, per_tx=2)
        events = await client.events(2)
        assert [e["id"] for e in events] == [4, 5]  # live only: nothing at or below hello's id
        assert set(events[0]) == {"id", "type", "payload", "created_at"}
        assert events[0]["type"] == "document.status_updated"
        assert events[0]["payload"]["workspace_id"] == str(workspace)
        assert "T" in events[0]["created_at"] and events[0]["created_at"].endswith("+00:00")
        await client.silent(0.3)


async def test_bad_tokens_are_closed_with_4401_and_no_frame(database_url: str) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    now = int(time.time())
    claims = {"sub": str(user), "iat": now, "exp": now + 600}
    bad = {
        "expired": mint_token(user, SECRET, ttl_seconds=-60),
        "wrong_signature": mint_token(user, "another-secret-0123456789abcdef0123"),
        "alg_none": jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "garbage": "not.a.jwt",
        "not_a_uuid_subject": jwt.encode({**claims, "sub": "alice"}, SECRET, algorithm="HS256"),
    }
    async with served_hub(database_url) as srv:
        urls = [f"{srv.ws_url}?token={token}" for token in bad.values()]
        urls += [srv.ws_url, f"{srv.ws_url}?token="]
        for url in urls:
            async with ws_client(url) as client:
                # An event published meanwhile must not leak to the refused socket.
                await publish_events(database_url, workspace, 1)
                code, _, frames = await client.until_closed(10)
                assert (code, frames) == (4401, []), url
        headers = {"Authorization": f"Bearer {bad['wrong_signature']}"}
        async with ws_client(srv.ws_url, additional_headers=headers) as client:
            assert (await client.until_closed(10))[::2] == (4401, [])
        headers = {"Authorization": f"Bearer {mint_token(user, SECRET)}"}
        async with ws_client(srv.ws_url, additional_headers=headers) as client:
            assert (await client.frame())["type"] == "hello"


async def test_a_user_never_receives_events_of_a_workspace_they_are_not_in(database_url: str) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    ws_alice = make_workspace(database_url, [alice])
    ws_shared = make_workspace(database_url, [alice, bob])
    async with (
        served_hub(database_url) as srv,
        ws_client(ws_url(srv.ws_url, alice)) as a,
        ws_client(ws_url(srv.ws_url, bob)) as b,
    ):
        await a.frame(), await b.frame()
        await publish_events(database_url, ws_alice, 3, per_tx=3)
        await publish_events(database_url, ws_alice, 1, size=20_000)  # by reference
        await publish_events(database_url, ws_shared, 1)
        got_a, got_b = await a.events(5), await b.events(1)
        assert {e["payload"]["workspace_id"] for e in got_a} == {str(ws_alice), str(ws_shared)}
        assert [e["payload"]["workspace_id"] for e in got_b] == [str(ws_shared)]
        assert got_b[0]["id"] == 1  # bob's own stream
        await b.silent(0.5)
    # Resuming from 0 does not leak them either.
    async with served_hub(database_url) as srv, ws_client(ws_url(srv.ws_url, bob, last_event_id=0)) as b:
        assert (await b.frame())["payload"]["last_event_id"] == 1
        assert [e["payload"]["workspace_id"] for e in await b.events(1)] == [str(ws_shared)]
        await b.silent(0.3)


# -- flow control and dead sockets ---------------------------------------------------


async def test_heartbeat_closes_a_silent_connection_and_keeps_a_live_one(database_url: str) -> None:
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with (
        served_hub(database_url, heartbeat_seconds=0.3) as srv,
        ws_client(ws_url(srv.ws_url, user)) as silent,
        ws_client(ws_url(srv.ws_url, user)) as alive,
    ):
        await silent.frame(), await alive.frame()
        started = time.monotonic()

        async def answer_pings() -> None:
            while True:
                frame = await alive.frame(skip_pings=False)
                if frame["type"] == "ping":
                    await alive.send({"type": "pong"})

        answering = asyncio.create_task(answer_pings())
        code, reason, frames = await silent.until_closed(5)
        assert (code, reason) == (4408, "heartbeat timeout")
        assert {"type": "ping"} in frames
        assert 0.5 < time.monotonic() - started < 2.0
        await asyncio.sleep(1.0)  # 3+ intervals: the answering client is still there
        assert not answering.done()
        answering.cancel()
        assert srv.hub.connection_count == 1


class StuckTransport:
    """A transport whose peer never reads: every send after `free` blocks forever."""

    client_frames = True
    open_gauge = WEBSOCKETS_OPEN
    closes = WEBSOCKET_CLOSES

    def __init__(self, free: int) -> None:
        self.sent: list[bytes] = []
        self.free = free
        self.closed: tuple[int, str] | None = None
        self.blocked = asyncio.Event()

    async def _send(self, data: bytes) -> None:
        if len(self.sent) >= self.free:
            self.blocked.set()
            await asyncio.Event().wait()
        self.sent.append(data)

    async def send_control(self, frame: bytes) -> None:
        await self._send(frame)

    async def send_event(self, event: DeliveredEvent) -> None:
        await self._send(event.to_frame())

    async def receive(self) -> str | bytes | None:
        await asyncio.Event().wait()
        raise AssertionError

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_stuck_connection_is_closed_4408_without_delaying_the_handler(database_url: str) -> None:
    """The backlog rule, at the unit level: the listener handler never waits on a socket."""
    user = uuid.uuid4()
    make_workspace(database_url, [user])
    async with served_hub(database_url, queue_max=50) as srv:
        stuck = StuckTransport(free=3)
        conn = Connection(
            stuck,
            TokenClaims(user, expires_at=int(time.time()) + 3600),
            verify=srv.hub._verify,
            pool=srv.hub.pool,
            queue_max=50,
            heartbeat_seconds=None,
            register=srv.hub._register,
            unregister=srv.hub._unregister,
        )
        serving = asyncio.create_task(conn.serve(None))
        await asyncio.sleep(0.2)
        assert len(stuck.sent) == 1  # hello
        created = datetime.now(UTC)

        def offer(ids: range) -> None:
            for i in ids:
                conn.offer(DeliveredEvent(id=i, type="document.deleted", payload={}, created_at=created))

        offer(range(1, 11))
        await asyncio.wait_for(stuck.blocked.wait(), 5)  # the writer is now blocked on the socket
        started = time.perf_counter()
        offer(range(11, 200))  # synchronous: returns at once although the socket is stuck
        assert time.perf_counter() - started < 0.1
        await asyncio.wait_for(serving, 10)
        assert stuck.closed == (4408, "send queue full")
        assert len(stuck.sent) == 3  # hello + 2 events, then stuck
        assert srv.hub.connection_count == 0


class PacedTransport(StuckTransport):
    """A client that reads, one frame every `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(free=10**9)
        self.delay = delay

    async def _send(self, data: bytes) -> None:
        await asyncio.sleep(self.delay)
        self.sent.append(data)

    def event_ids(self) -> list[int]:
        return [
            f["id"]
            for f in map(orjson.loads, self.sent)
            if "id" in f and f.get("type") == "document.status_updated"
        ]


def unhubbed_connection(
    srv: Served, transport: StuckTransport, user: uuid.UUID, queue_max: int
) -> Connection:
    """A connection that only the test feeds (the hub's own notices never reach it)."""
    return Connection(
        transport,
        TokenClaims(user, expires_at=int(time.time()) + 3600),
        verify=srv.hub._verify,
        pool=srv.hub.pool,
        queue_max=queue_max,
        heartbeat_seconds=None,
        register=lambda _conn: True,
        unregister=lambda _conn: None,
    )


async def lost_then_live(srv: Served, conn: Connection, workspace: uuid.UUID, lost: int, live: int) -> None:
    """`lost` events whose notices never came (the hub's catch-up finds them), then a burst of
    `live` notices at once, as a broker delivers them right after an outage."""
    await publish_events(srv.dsn, workspace, lost, per_tx=50)
    async with srv.hub.pool.connection() as db:
        conn.catch_up(await EventLog(db).stream_position(conn.user_id))
    await publish_events(srv.dsn, workspace, live, per_tx=50)
    async with srv.hub.pool.connection() as db:
        burst = (await EventLog(db).read_after(conn.user_id, lost, limit=live)).events
    for event in burst:
        conn.offer(event)


async def test_live_events_while_a_lost_gap_is_read_back_are_no_backlog_and_not_kept_in_memory(
    database_url: str,
) -> None:
    """After lost notices (a broker outage), a client that reads gets everything without a 4408:
    the live burst beyond WS_SEND_QUEUE_MAX is read from the log with the gap, not kept in memory."""
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv:
        client = PacedTransport(delay=0.0005)
        conn = unhubbed_connection(srv, client, user, queue_max=50)
        serving = asyncio.create_task(conn.serve(None))
        await _until(lambda: len(client.sent) == 1, 5)  # hello
        spills = REGISTRY.get_sample_value("rag_api_realtime_spills_total") or 0.0

        await lost_then_live(srv, conn, workspace, lost=300, live=300)
        assert len(conn._pending) <= 50, "the burst was kept in memory"
        await _until(lambda: len(client.event_ids()) >= 600, 30)
        assert client.event_ids() == list(range(1, 601))
        assert client.closed is None and not serving.done()
        assert (REGISTRY.get_sample_value("rag_api_realtime_spills_total") or 0.0) > spills
        conn.request_close(1000, "done")
        await asyncio.wait_for(serving, 10)


async def test_a_client_that_stops_reading_during_a_replay_is_closed_4408_when_its_grace_ends(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grace is for catching up, not for a stuck client: once it ends the bound applies,
    without waiting for another event; meanwhile the socket holds no more than the bound."""
    monkeypatch.setattr(connection, "REPLAY_GRACE_SECONDS", 0.5)
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv:
        stuck = StuckTransport(free=3)
        conn = unhubbed_connection(srv, stuck, user, queue_max=50)
        serving = asyncio.create_task(conn.serve(None))
        await lost_then_live(srv, conn, workspace, lost=100, live=200)
        assert stuck.closed is None and len(conn._pending) <= 50
        await asyncio.wait_for(serving, 10)
        assert stuck.closed == (4408, "send queue full")


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s"
        await asyncio.sleep(0.01)
