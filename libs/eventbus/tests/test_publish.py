"""publish(): per-user consecutive ids in commit order, under real concurrency."""

from __future__ import annotations

import asyncio
import random
import uuid

import orjson
import psycopg
import pytest
from psycopg import AsyncConnection

from rag_eventbus import EventLog, publish, publish_and_number

from .conftest import TestEvent, make_audience, user_event_ids

pytestmark = pytest.mark.anyio


def event_for(audience: uuid.UUID) -> TestEvent:
    """An event whose payload names its audience (the bus does not deliver the audience)."""
    return TestEvent(audience, payload={"for": str(audience), "item": str(uuid.uuid4())})


async def test_concurrent_publishers_give_consecutive_ids_and_resumable_streams(
    bus_database_url: str,
) -> None:
    users = [uuid.uuid4() for _ in range(6)]
    # Overlapping audiences: every audience shares users with others.
    audiences = [
        make_audience(bus_database_url, [users[i], users[(i + 1) % 6], users[(i + 3) % 6]]) for i in range(6)
    ]
    publishers, per_publisher = 20, 200
    done = asyncio.Event()
    seen: dict[uuid.UUID, list[int]] = {u: [] for u in users}

    async def publisher(n: int) -> None:
        rng = random.Random(n)
        async with await AsyncConnection.connect(bus_database_url) as conn:
            for _ in range(per_publisher):
                async with conn.transaction():
                    await publish(conn, [event_for(rng.choice(audiences))])

    async def resuming_reader(user_id: uuid.UUID) -> None:
        """Resume "after k" at random moments: must see every id exactly once, in order."""
        rng = random.Random(str(user_id))
        async with await AsyncConnection.connect(bus_database_url, autocommit=True) as conn:
            log = EventLog(conn)
            after = 0
            while True:
                finished = done.is_set()
                batch = (await log.read_after(user_id, after, limit=rng.randint(1, 50))).events
                for event in batch:
                    seen[user_id].append(event.id)
                    after = event.id
                if finished and not batch:
                    return
                await asyncio.sleep(rng.random() * 0.01)

    readers = [asyncio.create_task(resuming_reader(u)) for u in users]
    await asyncio.gather(*(publisher(n) for n in range(publishers)))
    done.set()
    await asyncio.gather(*readers)

    total = 0
    for user_id in users:
        ids = user_event_ids(bus_database_url, user_id)
        assert ids == list(range(1, len(ids) + 1)), "gap or duplicate in the stored stream"
        assert seen[user_id] == ids, "a resuming reader missed or repeated an event"
        total += len(ids)
    # Each event went to the 3 recipients of its audience.
    assert total == publishers * per_publisher * 3


async def test_rolled_back_publish_leaves_no_event_and_no_gap(bus_database_url: str) -> None:
    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    async with await AsyncConnection.connect(bus_database_url) as conn:
        async with conn.transaction():
            await publish(conn, [event_for(audience)])
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await publish(conn, [event_for(audience), event_for(audience)])
                raise RuntimeError("the caller's work failed")
        async with conn.transaction():
            ids = await publish_and_number(conn, [event_for(audience)])
    assert ids == {user: [2]}
    assert user_event_ids(bus_database_url, user) == [1, 2]


async def test_events_reach_only_the_recipients_of_their_audience(bus_database_url: str) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    for_alice = make_audience(bus_database_url, [alice])
    for_bob = make_audience(bus_database_url, [bob])
    async with await AsyncConnection.connect(bus_database_url) as conn:
        async with conn.transaction():
            await publish(conn, [event_for(for_alice), event_for(for_alice), event_for(for_bob)])
    with psycopg.connect(bus_database_url) as conn:
        rows = conn.execute("SELECT user_id, payload->>'for' FROM events").fetchall()
    assert sorted((u, w) for u, w in rows) == sorted(
        [(alice, str(for_alice)), (alice, str(for_alice)), (bob, str(for_bob))]
    )


def test_decode_notice_decodes_only_the_wanted_users() -> None:
    from datetime import UTC, datetime

    import orjson

    from rag_eventbus import decode_notice

    alice, bob = uuid.uuid4(), uuid.uuid4()
    inline = orjson.dumps(
        {
            "c": datetime(2024, 1, 1, tzinfo=UTC),
            "e": [[str(alice), 1, "test.happened", {"a": 1}], [str(bob), 7, "test.happened", {"b": 2}]],
        }
    ).decode()
    every = decode_notice(inline)
    assert [(u, e.id) for u, e in every.events] == [(alice, 1), (bob, 7)]
    only_bob = decode_notice(inline, wanted={bob}.__contains__)
    assert [(u, e.id, e.payload) for u, e in only_bob.events] == [(bob, 7, {"b": 2})]
    assert only_bob.events[0][1].created_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert decode_notice(inline, wanted=lambda _u: False).events == []
    ranges = orjson.dumps({"r": [[str(alice), 1, 3], [str(bob), 4, 9]]}).decode()
    assert decode_notice(ranges).ranges == [(alice, 1, 3), (bob, 4, 9)]
    assert decode_notice(ranges, wanted={alice}.__contains__).ranges == [(alice, 1, 3)]


async def test_one_notification_per_publish_with_numbered_events(bus_database_url: str) -> None:
    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    async with await AsyncConnection.connect(bus_database_url, autocommit=True) as listen:
        await listen.execute("LISTEN rag_realtime")
        async with await AsyncConnection.connect(bus_database_url) as conn:
            async with conn.transaction():
                await publish(conn, [event_for(audience) for _ in range(3)])
        got = [n async for n in listen.notifies(timeout=1.0)]
    from rag_eventbus import decode_notice

    assert len(got) == 1
    notice = decode_notice(got[0].payload)
    assert [(u, e.id, e.type) for u, e in notice.events] == [
        (user, 1, "test.happened"),
        (user, 2, "test.happened"),
        (user, 3, "test.happened"),
    ]


async def test_the_trace_context_travels_in_the_notice_and_the_log_but_never_in_the_frame(
    bus_database_url: str,
) -> None:
    """A publish outside any span stores none; one given a traceparent stores it with every
    event, inline in the notification and in the log; the frame a client gets is unchanged."""
    from rag_eventbus import decode_notice

    user = uuid.uuid4()
    audience = make_audience(bus_database_url, [user])
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with await AsyncConnection.connect(bus_database_url, autocommit=True) as listen:
        await listen.execute("LISTEN rag_realtime")
        async with await AsyncConnection.connect(bus_database_url) as conn:
            async with conn.transaction():
                await publish(conn, [event_for(audience)])  # no span current: no context
            async with conn.transaction():
                await publish(conn, [event_for(audience), event_for(audience)], traceparent=traceparent)
        got = [decode_notice(n.payload) async for n in listen.notifies(timeout=1.0)]
        replay = await EventLog(listen).read_after(user, 0)
    assert [[e.traceparent for _, e in notice.events] for notice in got] == [[None], [traceparent] * 2]
    assert [e.traceparent for e in replay.events] == [None, traceparent, traceparent]
    frame = orjson.loads(replay.events[1].to_frame())
    assert set(frame) == {"id", "type", "payload", "created_at"}
