"""What travels through Redis when it is the broker: channel names and messages.

Each user has a channel of their own, `<prefix>u:<user id>`, published and subscribed as
sharded pub/sub (SPUBLISH / SSUBSCRIBE, Redis 7 and later), so that a Redis Cluster spreads
the channels over its shards and an api replica receives only the users it holds. A
message on it is a `rag_realtime` notice (`publish.decode_notice` reads it) holding only that
user's part of the notice: the user's events inline, or the user's id range to read back
from the log. `<prefix>refill` (plain pub/sub, every replica) says "notices may have been
lost: read every local user's gap from the log".

Postgres stays the source of truth: a lost message delays a client until its replica
reads the log, it never loses an event (docs/realtime.md, "Redis as the broker").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import orjson

from rag_retry import RetryPolicy

DEFAULT_PREFIX = "rag:rt:"
REFILL_MESSAGE = b"refill"
# Waits between tries while Redis does not answer, for the relay and the subscriber alike.
REDIS_RETRY = RetryPolicy(base_seconds=0.1, max_seconds=5.0)


def user_channel(prefix: str, user_id: UUID | str) -> str:
    return f"{prefix}u:{user_id}"


def refill_channel(prefix: str) -> str:
    return f"{prefix}refill"


def split_notice(payload: str | bytes) -> Iterator[tuple[str, bytes]]:
    """(user id, that user's notice) for every user a `rag_realtime` notice names, in the
    notice's order; linear in its size. A notice that is not one raises ValueError."""
    body: Any = orjson.loads(payload)
    if not isinstance(body, dict):
        raise ValueError("a notice is a JSON object")
    if "e" in body:
        by_user: dict[str, list[Any]] = {}
        for entry in body["e"]:
            by_user.setdefault(entry[0], []).append(entry)
        head = {k: v for k, v in body.items() if k != "e"}  # "c", and "t" when traced
        for user, entries in by_user.items():
            yield user, orjson.dumps({**head, "e": entries})
    elif "r" in body:
        for entry in body["r"]:
            yield entry[0], orjson.dumps({"r": [entry]})
    else:
        raise ValueError("a notice holds events ('e') or ranges ('r')")
