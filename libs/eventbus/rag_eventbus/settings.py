"""How long the event log keeps a user's events (docs/contract.md §3): a settings mixin."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class EventRetentionSettings(BaseSettings):
    event_retention_seconds: int = Field(default=604800, ge=1)
    event_retention_max_per_user: int = Field(default=10000, ge=1)
