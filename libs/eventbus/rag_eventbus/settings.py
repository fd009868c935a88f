"""The bus's settings (docs/contract.md §3), as mixins of the services' settings."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from rag_eventbus.redis_wire import DEFAULT_PREFIX


class EventRetentionSettings(BaseSettings):
    """How long the event log keeps a user's events."""

    event_retention_seconds: int = Field(default=604800, ge=1)
    event_retention_max_per_user: int = Field(default=10000, ge=1)


class BrokerSettings(BaseSettings):
    """Which engine carries the realtime doorbells from Postgres to the api replicas
    (docs/realtime.md, "Scaling out"): Postgres' own NOTIFY, or Redis pub/sub."""

    eventbus_broker: Literal["postgres", "redis"] = "postgres"
    redis_url: str | None = None
    # The channels' common prefix: two deployments may share one Redis.
    eventbus_redis_prefix: str = Field(default=DEFAULT_PREFIX, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _redis_needs_a_url(self) -> Self:
        if self.eventbus_broker == "redis" and not self.redis_url:
            raise ValueError("EVENTBUS_BROKER=redis needs REDIS_URL (e.g. redis://redis:6379/0)")
        return self
