"""Events stored once per audience, users' streams mapping their ids onto them by runs.

The oracle in each test is what the publishers were told (`publish_and_number`'s ids) or a
sequence written out by hand; the log is read back through `EventLog` as the api reads it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from rag_eventbus import EventLog, ResyncRequired, publish, publish_and_number
from rag_eventbus.schema import migrations

from .conftest import TEST_RECIPIENTS, TestEvent, make_audience

pytestmark = pytest.mark.anyio


def item(audience: uuid.UUID, label: str | None = None) -> TestEvent:
    return TestEvent(audience, payload={"item": label or str(uuid.uuid4())})


async def items_of(dsn: str, user: uuid.UUID, *, after: int = 0, page: int = 500) -> list[tuple[int, str]]:
    """(id, item) of the user's stream after `after`, read in pages as a resuming client does."""
    out: list[tuple[int, str]] = []
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            batch = (await EventLog(conn).read_after(user, out[-1][0] if out else after, limit=page)).events
            if not batch:
                return out
            out += [(e.id, e.payload["item"]) for e in batch]


def count(dsn: str, sql: str, *args: Any) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, args).fetchone()
        assert row is not None
        return int(row[0])


def add_member(dsn: str, audience: uuid.UUID, user: uuid.UUID) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO test_audience_members VALUES (%s, %s)", (audience, user))


def remove_member(dsn: str, audience: uuid.UUID, user: uuid.UUID) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM test_audience_members WHERE audience = %s AND user_id = %s", (audience, user)
        )


async def publish_one(dsn: str, *events: TestEvent) -> dict[uuid.UUID, list[int]]:
    async with await AsyncConnection.connect(dsn) as conn:
        async with conn.transaction():
            return await publish_and_number(conn, list(events))


async def test_concurrent_publishers_to_overlapping_audiences_map_every_id_to_its_own_event(
    bus_database_url: str,
) -> None:
    """Transactions of 1-3 events to random audiences, so users' runs switch all the time:
    every user reads back exactly the events the publishers numbered for them, by id."""
    users = [uuid.uuid4() for _ in range(8)]
    members = {i: [users[i], users[(i + 1) % 8], users[(i + 3) % 8]] for i in range(8)}
    audiences = [make_audience(bus_database_url, members[i]) for i in range(8)]
    expected: dict[uuid.UUID, dict[int, str]] = {u: {} for u in users}

    async def publisher(n: int) -> None:
        rng = random.Random(n)
        async with await AsyncConnection.connect(bus_database_url) as conn:
            for _ in range(60):
                picked = [rng.randrange(8) for _ in range(rng.randint(1, 3))]
                events = [item(audiences[i]) for i in picked]
                async with conn.transaction():
                    ids = await publish_and_number(conn, events)
                for user, user_ids in ids.items():
                    mine = [
                        e.payload["item"] for i, e in zip(picked, events, strict=True) if user in members[i]
                    ]
                    assert len(mine) == len(user_ids)
                    expected[user].update(zip(user_ids, mine, strict=True))

    await asyncio.gather(*(publisher(n) for n in range(10)))
    for user in users:
        got = await items_of(bus_database_url, user, page=random.Random(str(user)).randint(1, 40))
        assert [i for i, _ in got] == list(range(1, len(got) + 1))
        assert dict(got) == expected[user]
    # Stored once however many users an event reached.
    published = count(bus_database_url, "SELECT sum(last_seq) FROM audience_streams")
    assert count(bus_database_url, "SELECT count(*) FROM audience_events") == published
    assert count(bus_database_url, "SELECT count(*) FROM events") == sum(len(e) for e in expected.values())


async def test_a_member_of_one_busy_workspace_stays_in_one_run(bus_database_url: str) -> None:
    team = [uuid.uuid4() for _ in range(50)]
    audience = make_audience(bus_database_url, team)
    for _ in range(20):
        await publish_one(bus_database_url, item(audience), item(audience))
    assert count(bus_database_url, "SELECT count(*) FROM audience_events") == 40
    assert count(bus_database_url, "SELECT count(*) FROM user_runs") == 50  # one per member, ever
    assert [i for i, _ in await items_of(bus_database_url, team[7])] == list(range(1, 41))


async def test_join_leave_and_rejoin_read_back_exactly_what_the_user_received(bus_database_url: str) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    a = make_audience(bus_database_url, [user, other])
    b = make_audience(bus_database_url, [other])
    for label in ("a1", "a2"):
        await publish_one(bus_database_url, item(a, label))
    add_member(bus_database_url, b, user)
    await publish_one(bus_database_url, item(b, "b1"), item(a, "a3"), item(b, "b2"))
    remove_member(bus_database_url, a, user)
    await publish_one(bus_database_url, item(a, "a4-missed"))
    await publish_one(bus_database_url, item(b, "b3"))
    add_member(bus_database_url, a, user)
    await publish_one(bus_database_url, item(a, "a5"), item(a, "a6"))

    assert await items_of(bus_database_url, user) == list(
        enumerate(["a1", "a2", "b1", "a3", "b2", "b3", "a5", "a6"], start=1)
    )
    assert [x for _, x in await items_of(bus_database_url, other)] == [
        "a1", "a2", "b1", "a3", "b2", "a4-missed", "b3", "a5", "a6",
    ]  # fmt: skip
    # Runs of the user: a1-a2, b1, a3, b2-b3 (b's seqs 2..3 follow on), a5-a6 (after a gap in a).
    assert count(bus_database_url, "SELECT count(*) FROM user_runs WHERE user_id = %s", user) == 5
    # Pages that start inside a run, at a run's first id, and end anywhere.
    async with await AsyncConnection.connect(bus_database_url, autocommit=True) as conn:
        log = EventLog(conn)
        assert [e.payload["item"] for e in (await log.read_after(user, 1, limit=3)).events] == [
            "a2",
            "b1",
            "a3",
        ]
        assert [e.payload["item"] for e in (await log.read_after(user, 4, upto=6)).events] == ["b2", "b3"]
        assert [e.id for e in (await log.read_after(user, 8)).events] == []


async def test_retention_prunes_audiences_and_users_count_what_went(bus_database_url: str) -> None:
    """A busy audience's old events go; a user's ids that pointed at them are gone for them
    (resync below), while a user of the quiet audience alone keeps everything."""
    user, quiet_only = uuid.uuid4(), uuid.uuid4()
    busy = make_audience(bus_database_url, [user])
    quiet = make_audience(bus_database_url, [user, quiet_only])
    for n in range(5):
        await publish_one(bus_database_url, item(busy, f"busy{n}"))
    await publish_one(bus_database_url, item(quiet, "quiet"))
    for n in range(5, 10):
        await publish_one(bus_database_url, item(busy, f"busy{n}"))
    # user: ids 1-5 busy seqs 1-5, id 6 quiet, ids 7-11 busy seqs 6-10.
    async with await AsyncConnection.connect(bus_database_url, autocommit=True) as conn:
        log = EventLog(conn)
        assert await log.prune(max_age_seconds=3600, max_per_user=3) == 7  # busy seqs 1-7
        assert await log.prune(max_age_seconds=3600, max_per_user=3) == 0
        position = await log.stream_position(user)
        assert (position.last_id, position.oldest_id) == (11, 9)
        assert [e.payload["item"] for e in (await log.read_after(user, 8)).events] == [
            "busy7",
            "busy8",
            "busy9",
        ]
        with pytest.raises(ResyncRequired) as raised:
            await log.read_after(user, 5)
        assert raised.value.oldest_event_id == 9
        quiet_position = await log.stream_position(quiet_only)
        assert (quiet_position.last_id, quiet_position.oldest_id) == (1, 1)
        assert [e.payload["item"] for e in (await log.read_after(quiet_only, 0)).events] == ["quiet"]
    # The user's two runs below id 9 went; the latest stays.
    assert count(bus_database_url, "SELECT count(*) FROM user_runs WHERE user_id = %s", user) == 1
    await publish_one(bus_database_url, item(quiet, "after"))
    assert await items_of(bus_database_url, user, after=8) == [
        (9, "busy7"), (10, "busy8"), (11, "busy9"), (12, "after"),
    ]  # fmt: skip


async def test_a_log_written_before_audience_streams_moves_over_unchanged(empty_database_url: str) -> None:
    """Migrations 0001-0003 and events published by their function, then 0004: the same ids,
    payloads and positions, and new events continue each stream where it was."""
    before = [(name, sql) for name, sql in migrations() if name < "0004"]
    after = [(name, sql) for name, sql in migrations() if name >= "0004"]
    user, other = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for _name, sql in before:
            conn.execute(sql.encode())
        conn.execute(TEST_RECIPIENTS.encode())
    audience = make_audience(empty_database_url, [user, other])
    alone = make_audience(empty_database_url, [user])
    async with await AsyncConnection.connect(empty_database_url) as conn:
        for n in range(6):
            async with conn.transaction():
                await publish(conn, [item(audience if n % 3 else alone, f"old{n}")])
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("UPDATE user_streams SET pruned_through = 2 WHERE user_id = %s", (user,))
        conn.execute("DELETE FROM events WHERE user_id = %s AND id <= 2", (user,))
        for _name, sql in after:
            conn.execute(sql.encode())

    assert await items_of(empty_database_url, user, after=2) == [
        (3, "old2"),
        (4, "old3"),
        (5, "old4"),
        (6, "old5"),
    ]
    assert await items_of(empty_database_url, other) == [(1, "old1"), (2, "old2"), (3, "old4"), (4, "old5")]
    await publish_one(empty_database_url, item(audience, "new"))
    assert (await items_of(empty_database_url, user, after=2))[-2:] == [(6, "old5"), (7, "new")]
    assert (await items_of(empty_database_url, other))[-1] == (5, "new")
    async with await AsyncConnection.connect(empty_database_url, autocommit=True) as conn:
        with pytest.raises(ResyncRequired):
            await EventLog(conn).read_after(user, 1)
