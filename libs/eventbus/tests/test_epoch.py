"""Stream epochs: they change exactly when a stream's ids could repeat (migrations/0002_stream_epoch.sql).

The lineage cases are real: a copy of the database (what a restore into a new database
is) and a replica promoted by Postgres itself; nothing is injected.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import AsyncConnection

from rag_devstack.postgres import EmbeddedPostgres, _bin_dir
from rag_eventbus import EventLog, ResyncRequired, publish
from rag_eventbus.schema import install
from rag_testing.pytest_plugin import cloned_database

from .conftest import TEST_RECIPIENTS, TestEvent, make_audience

pytestmark = pytest.mark.anyio


async def publish_n(dsn: str, audience: uuid.UUID, n: int) -> None:
    async with await AsyncConnection.connect(dsn) as conn:
        async with conn.transaction():
            await publish(conn, [TestEvent(audience) for _ in range(n)])


async def position(dsn: str, user: uuid.UUID) -> tuple[int, int, str]:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        p = await EventLog(conn).stream_position(user)
    return p.last_id, p.oldest_id, p.epoch


async def test_the_epoch_is_stable_and_changes_when_the_stream_is_reset(bus_database_url: str) -> None:
    user = uuid.uuid4()
    # An empty stream already has the epoch its first events are published under.
    _, _, empty = await position(bus_database_url, user)
    audience = make_audience(bus_database_url, [user])
    await publish_n(bus_database_url, audience, 3)
    last_id, oldest, epoch = await position(bus_database_url, user)
    assert (last_id, oldest, epoch) == (3, 1, empty)
    assert len(epoch) == 20 and epoch != (await position(bus_database_url, uuid.uuid4()))[2]

    # Reset: the row goes, and its runs with it; ids restart at 1 under a new epoch.
    with psycopg.connect(bus_database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM user_streams WHERE user_id = %s", (user,))
    await publish_n(bus_database_url, audience, 2)
    last_id, _, reset = await position(bus_database_url, user)
    assert last_id == 2 and reset != epoch

    async with await AsyncConnection.connect(bus_database_url, autocommit=True) as conn:
        log = EventLog(conn)
        with pytest.raises(ResyncRequired) as raised:
            await log.read_after(user, 1, epoch=epoch)
        assert (raised.value.epoch, raised.value.oldest_event_id) == (reset, 1)
        replay = await log.read_after(user, 0, epoch=reset)
        assert [e.id for e in replay.events] == [1, 2] and replay.position.epoch == reset
        assert [e.id for e in (await log.read_after(user, 1)).events] == [2]  # no epoch: as before
        positions = await log.stream_positions([user, uuid.uuid4()])
        assert list(positions) == [user] and positions[user].epoch == reset


async def test_a_copy_of_the_database_is_a_new_lineage(bus_database_url: str, pg_admin_dsn: str) -> None:
    user = uuid.uuid4()
    await publish_n(bus_database_url, make_audience(bus_database_url, [user]), 3)
    _, _, original = await position(bus_database_url, user)
    source = str(psycopg.conninfo.conninfo_to_dict(bus_database_url)["dbname"])
    with cloned_database(pg_admin_dsn, "rag_epoch_copy", template=source) as copy_dsn:
        last_id, _, copied = await position(copy_dsn, user)
        assert last_id == 3 and copied != original  # same rows, same generation, another database
        assert (await position(bus_database_url, user))[2] == original


async def test_a_promoted_replica_is_a_new_lineage_at_once() -> None:
    """A real streaming replica of a cluster of its own, promoted by `pg_promote()`: the new
    timeline changes the epoch before any checkpoint (pg_control_checkpoint() would lag)."""
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"rag-epoch-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    primary = EmbeddedPostgres(root / "primary")
    standby = EmbeddedPostgres(root / "standby")
    try:
        primary.start()
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            install(conn, TEST_RECIPIENTS)
        user = uuid.uuid4()
        await publish_n(primary.dsn, make_audience(primary.dsn, [user]), 5)
        _, _, before = await position(primary.dsn, user)

        standby.data_dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            owner = os.stat(primary.data_dir)
            os.chown(standby.data_dir, owner.st_uid, owner.st_gid)
        base_backup = [str(_bin_dir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port)]
        primary._run([*base_backup, "-U", "postgres", "-D", str(standby.data_dir), "-R", "-X", "stream"])
        standby.start()
        with psycopg.connect(standby.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_promote(true)")  # waits for the end of recovery, not a checkpoint
        last_id, _, after = await position(standby.dsn, user)
        assert last_id == 5 and after != before
        assert (await position(primary.dsn, user))[2] == before
    finally:
        standby.destroy()
        primary.destroy()
        shutil.rmtree(root, ignore_errors=True)
