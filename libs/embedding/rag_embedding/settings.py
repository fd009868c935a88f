"""Which embedding provider to use (docs/contract.md §3): a mixin for each service's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class EmbeddingSettings(BaseSettings):
    embedding_provider: Literal["hash", "minilm", "openai"] = "hash"
    embedding_base_url: str | None = None
    embedding_model: str | None = None
    embedding_api_key: str | None = None
    # One embedding call (all its retries included) fails after this long: a dead embedding
    # service must fail searches and jobs quickly instead of holding them for minutes.
    embedding_timeout_seconds: float = Field(default=30.0, gt=0)
