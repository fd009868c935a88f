"""Listener: large events, reconnection after the backend is killed, replay of the gap."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg import AsyncConnection

from rag_eventbus import REALTIME_CHANNEL, EventLog, Listener, decode_notice, publish, wakeup_listener

from .conftest import TestEvent, make_audience

pytestmark = pytest.mark.anyio


async def test_a_50kb_event_reaches_a_listener_intact(bus_database_url: str) -> None:
    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    big = "x" * 50_000 + "é✓"
    notices: asyncio.Queue[str] = asyncio.Queue()
    async with Listener(bus_database_url, {REALTIME_CHANNEL: notices.put_nowait}) as listener:
        await listener.wait_connected(10)
        async with await AsyncConnection.connect(bus_database_url) as conn:
            async with conn.transaction():
                await publish(conn, [TestEvent(audience, "test.big", {"error": big})])
        notice = decode_notice(await asyncio.wait_for(notices.get(), 10))
        # Too big for NOTIFY: it travels by reference and is read back from the log.
        assert notice.ranges == [(user, 1, 1)]
        async with await AsyncConnection.connect(bus_database_url, autocommit=True) as conn:
            (event,) = (await EventLog(conn).read_after(user, 0, upto=1)).events
    assert event.payload["error"] == big
    assert event.type == "test.big"


async def test_listener_reconnects_after_terminate_and_the_gap_is_replayable(bus_database_url: str) -> None:
    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    received: list[int] = []
    reconnected = asyncio.Event()

    def on_notice(payload: str) -> None:
        received.extend(e.id for _, e in decode_notice(payload).events)

    async def on_reconnect() -> None:
        reconnected.set()

    async def publish_one() -> None:
        async with await AsyncConnection.connect(bus_database_url) as conn:
            async with conn.transaction():
                await publish(conn, [TestEvent(audience)])

    listener = Listener(
        bus_database_url, {REALTIME_CHANNEL: on_notice}, on_reconnect=on_reconnect, backoff_initial=0.5
    )
    async with listener:
        await listener.wait_connected(10)
        assert listener.is_connected
        reconnected.clear()  # the first connection fires it too
        await publish_one()
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.02)
        assert received == [1]

        with psycopg.connect(bus_database_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        # Published while the listener is down: no notification will ever arrive for these.
        for _ in range(3):
            await publish_one()
        await asyncio.wait_for(reconnected.wait(), 10)
        assert listener.is_connected and listener.reconnects == 1
        async with await AsyncConnection.connect(bus_database_url, autocommit=True) as conn:
            missed = (await EventLog(conn).read_after(user, 1)).events
        assert [e.id for e in missed] == [2, 3, 4]
        assert set(received) <= {1, 2, 3, 4}


async def test_wakeup_listener_sets_the_event_on_notify(bus_database_url: str) -> None:
    wake = asyncio.Event()
    listener = wakeup_listener(bus_database_url, ["test_jobs"], wake)
    async with listener:
        await listener.wait_connected(10)
        wake.clear()
        with psycopg.connect(bus_database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify('test_jobs', 'job-1')")
        await asyncio.wait_for(wake.wait(), 5)
