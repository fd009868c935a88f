"""Every Postgres advisory lock the api takes, in one place, so that no two uses share a key.

All are transaction-scoped (`_xact_`): released at commit or rollback, even when the
replica dies mid-transaction, and usable through a transaction-mode pooler. Two kinds:

- replica-wide housekeeping (event retention, the orphan sweeper): one bigint key each;
  a replica that does not get it skips the round instead of queueing behind the holder;
- per-user serialisation (MAX_WORKSPACES_PER_USER, QUESTIONS_PER_MINUTE): the two-int4
  form (a class, the hash of the user id), waited for, so that two requests of one user
  cannot both count "room for one more". Postgres keeps one-bigint and two-int4 keys
  apart, so the classes never meet the housekeeping keys.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

# Replica-wide keys: the bytes of a name, as a positive bigint.
PRUNE_LOCK_KEY = int.from_bytes(b"ragprune", "big") & 0x7FFF_FFFF_FFFF_FFFF
SWEEP_LOCK_KEY = int.from_bytes(b"ragsweep", "big") & 0x7FFF_FFFF_FFFF_FFFF

# Per-user classes.
QUESTIONS_OF_USER = 0x5154  # "QT"
WORKSPACES_OF_USER = 0x5753  # "WS"

TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"
LOCK_USER = "SELECT pg_advisory_xact_lock(%s, hashtext(%s::text))"


async def try_replica_lock(conn: AsyncConnection[Any], key: int) -> bool:
    """Take `key` for this transaction if no other replica holds it; False if one does."""
    row = await (await conn.execute(TRY_LOCK, (key,))).fetchone()
    return bool(row and row[0])


async def lock_user(conn: AsyncConnection[Any], lock_class: int, user_id: UUID) -> None:
    """Wait for, then hold to commit, the `lock_class` lock of `user_id`."""
    await conn.execute(LOCK_USER, (lock_class, user_id))
