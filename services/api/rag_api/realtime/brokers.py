"""How `rag_realtime` notices reach this replica's hub: EVENTBUS_BROKER (docs/realtime.md).

- `postgres`: one LISTEN connection; every replica receives every notice and drops those
  of users it does not hold.
- `redis`: the replica subscribes to the Redis channels of the users it holds, and runs a
  relay candidate (one relay in the cluster forwards Postgres' notices to those channels).

Either way the hub gets the same notices (`on_notice`), and is told where some may have
been lost (`on_lost`: read every local user's gap from the log; `hold` when the database
itself may be another server now, which only the Postgres listener's reconnection can mean) and when a new user's subscription is live
(`on_user_subscribed`: read that user's gap, since events published before it reached no one).
"""

from __future__ import annotations

from typing import Literal, Protocol
from uuid import UUID

from rag_api import metrics
from rag_eventbus import REALTIME_CHANNEL, Listener
from rag_eventbus.redis_relay import RedisRelay
from rag_eventbus.redis_subscriber import RedisSubscriber, RefillCause
from rag_eventbus.settings import BrokerSettings


class BrokerClient(Protocol):
    """The hub, as a broker sees it."""

    def on_notice(self, payload: str | bytes) -> None: ...

    def on_lost(self, cause: RefillCause, *, hold: bool) -> None: ...

    def on_user_subscribed(self, user_id: UUID) -> None: ...


class PostgresBroker:
    name: Literal["postgres"] = "postgres"

    def __init__(self, listen_dsn: str, hub: BrokerClient) -> None:
        self.listener = Listener(
            listen_dsn,
            {REALTIME_CHANNEL: hub.on_notice},
            on_reconnect=lambda: hub.on_lost("reconnect", hold=True),
            name="realtime",
        )

    @property
    def connected(self) -> bool:
        return self.listener.is_connected

    @property
    def reconnects(self) -> int:
        return self.listener.reconnects

    def start(self) -> None:
        self.listener.start()

    async def wait_connected(self, timeout: float) -> None:
        await self.listener.wait_connected(timeout)

    async def stop(self) -> None:
        await self.listener.stop()

    def export_metrics(self) -> None:
        """The listener's gauges are the hub's (rag_api_listener_*)."""

    def add_user(self, user_id: UUID) -> None:
        """Nothing to do: this replica receives every user's notices."""

    def remove_user(self, user_id: UUID) -> None:
        """Nothing to do: this replica receives every user's notices."""


class RedisBroker:
    name: Literal["redis"] = "redis"

    def __init__(self, listen_dsn: str, redis_url: str, prefix: str, hub: BrokerClient) -> None:
        self.relay = RedisRelay(listen_dsn, redis_url, prefix=prefix)
        self.subscriber = RedisSubscriber(
            redis_url,
            prefix=prefix,
            on_notice=hub.on_notice,
            on_refill=lambda cause: hub.on_lost(cause, hold=False),
            on_subscribed=hub.on_user_subscribed,
        )

    @property
    def connected(self) -> bool:
        return self.subscriber.is_connected

    @property
    def reconnects(self) -> int:
        return self.subscriber.reconnects

    def start(self) -> None:
        self.relay.start()
        self.subscriber.start()

    async def wait_connected(self, timeout: float) -> None:
        await self.subscriber.wait_connected(timeout)

    async def stop(self) -> None:
        await self.subscriber.stop()
        await self.relay.stop()

    def export_metrics(self) -> None:
        """The relay's and the subscriber's counts, read when /metrics is scraped."""
        relay, subscriber = self.relay, self.subscriber
        metrics.REDIS_RELAY_ACTIVE.set_function(lambda: 1.0 if relay.active else 0.0)
        metrics.REDIS_RELAY_FORWARDED.set_function(lambda: float(relay.forwarded))
        metrics.REDIS_RELAY_PUBLISH_ERRORS.set_function(lambda: float(relay.publish_errors))
        metrics.REDIS_RELAY_REFILLS.set_function(lambda: float(relay.refills))
        metrics.REDIS_RELAY_DROPPED.set_function(lambda: float(relay.dropped))
        metrics.REDIS_SUBSCRIBER_CONNECTED.set_function(lambda: 1.0 if subscriber.is_connected else 0.0)
        metrics.REDIS_SUBSCRIBER_ERRORS.set_function(lambda: float(subscriber.errors))
        metrics.REDIS_SUBSCRIBER_REFILLS.set_function(lambda: float(subscriber.refills))

    def add_user(self, user_id: UUID) -> None:
        self.subscriber.add(user_id)

    def remove_user(self, user_id: UUID) -> None:
        self.subscriber.remove(user_id)


Broker = PostgresBroker | RedisBroker


def broker_for(settings: BrokerSettings, listen_dsn: str, hub: BrokerClient) -> Broker:
    if settings.eventbus_broker == "redis":
        assert settings.redis_url is not None  # BrokerSettings refuses redis without it
        return RedisBroker(listen_dsn, settings.redis_url, settings.eventbus_redis_prefix, hub)
    return PostgresBroker(listen_dsn, hub)
