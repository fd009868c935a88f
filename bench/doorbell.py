"""The doorbell alone, for both brokers: from a publish's commit to its notice in a receiver of the
bench's own process (no api, no socket). Postgres: a LISTEN connection on `rag_realtime`. Redis:
the relay (LISTEN, split by user, SPUBLISH) and a subscriber of every user's channel. What the
job runtime's wake-ups would pay on each (docs/realtime.md, "Scaling out")."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from bench.common import percentile
from rag_eventbus import REALTIME_CHANNEL, Listener, decode_notice, publish
from rag_eventbus.redis_relay import RedisRelay
from rag_eventbus.redis_subscriber import RedisSubscriber

EVENTS = 2000
RATE = 1000.0  # one-event transactions per second


@dataclass(frozen=True)
class Bell:
    """A `Publishable`: one small event for a workspace."""

    audience: UUID
    type: str = "document.status_updated"
    payload: dict[str, Any] = field(default_factory=lambda: {"status": "parsing"})


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[tuple[UUID, int], int] = {}

    def on_notice(self, payload: str | bytes) -> None:
        now = time.perf_counter_ns()
        for user, event in decode_notice(payload).events:
            self.at.setdefault((user, event.id), now)


async def measure(dsn: str, users: list[dict[str, str]], broker: str, redis_url: str) -> dict[str, float]:
    """p50 / p99 in ms over EVENTS one-event transactions at RATE, round-robin over `users`."""
    arrivals = Arrivals()
    stop: Callable[[], Any]
    if broker == "postgres":
        listener = Listener(dsn, {REALTIME_CHANNEL: arrivals.on_notice}, name="bench-doorbell")
        listener.start()
        await listener.wait_connected(10)
        stop = listener.stop
    else:
        prefix = f"bell{uuid.uuid4().hex[:6]}:"
        relay = RedisRelay(dsn, redis_url, prefix=prefix)
        subscriber = RedisSubscriber(
            redis_url,
            prefix=prefix,
            on_notice=arrivals.on_notice,
            on_refill=lambda cause: None,
            on_subscribed=lambda user: None,
        )
        relay.start()
        subscriber.start()
        await subscriber.wait_connected(10)
        await relay.listener.wait_connected(10)
        for u in users:
            subscriber.add(UUID(u["user"]))

        async def stop_both() -> None:
            await subscriber.stop()
            await relay.stop()

        stop = stop_both
    await asyncio.sleep(0.5)  # subscriptions confirmed, the relay's first refill sent
    sent: dict[tuple[UUID, int], int] = {}
    try:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            cur = await conn.execute(
                "SELECT user_id, last_id FROM user_streams WHERE user_id = ANY(%s)",
                ([UUID(u["user"]) for u in users],),
            )
            last = {row[0]: row[1] for row in await cur.fetchall()}
            await conn.commit()  # else each publish below would be a savepoint of this read's transaction
            t0 = time.perf_counter()
            for i in range(EVENTS):
                u = users[i % len(users)]
                user = UUID(u["user"])
                async with conn.transaction():
                    await publish(conn, [Bell(audience=UUID(u["workspace"]))])
                last[user] = last.get(user, 0) + 1
                sent[(user, last[user])] = time.perf_counter_ns()
                delay = t0 + (i + 1) / RATE - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
        await asyncio.sleep(1.0)
    finally:
        await stop()
    latencies = [(arrivals.at[k] - ns) / 1e6 for k, ns in sent.items() if k in arrivals.at]
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "received": len(latencies) / len(sent) * 100,
    }
