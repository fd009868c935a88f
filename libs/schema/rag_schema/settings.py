"""Settings shared by every service, read from the environment (docs/contract.md §3).

Each service builds its own settings class from these mixins so that a worker never
demands a variable only the api needs. `load_settings` turns a validation error into
one line naming the variable, because an operator reads that line in a pod log.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)


class DatabaseSettings(_Base):
    database_url: str
    eventbus_database_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @property
    def listen_dsn(self) -> str:
        """LISTEN needs a session-mode connection; a transaction-mode pooler breaks it."""
        return self.eventbus_database_url or self.database_url


class S3Settings(_Base):
    s3_endpoint_url: str | None = None
    s3_bucket: str
    s3_region: str = "auto"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None


class EmbeddingSettings(_Base):
    embedding_provider: Literal["hash", "minilm", "openai"] = "hash"
    embedding_base_url: str | None = None
    embedding_model: str | None = None
    embedding_api_key: str | None = None
    # One embedding call (all its retries included) fails after this long: a dead embedding
    # service must fail searches and jobs quickly instead of holding them for minutes.
    embedding_timeout_seconds: float = Field(default=30.0, gt=0)


class JobSettings(_Base):
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    worker_idle_sleep_seconds: float = Field(default=5.0, gt=0)
    job_lease_seconds: float = Field(default=30.0, gt=0)
    job_max_attempts: int = Field(default=5, ge=1)
    # Not in docs/contract.md §3 (additions, documented in docs/jobs.md):
    job_retry_base_seconds: float = Field(default=2.0, ge=0)
    worker_shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    worker_listen: bool = True  # false: poll only (benchmarks, pgbouncer without a direct DSN)


class EventRetentionSettings(_Base):
    event_retention_seconds: int = Field(default=604800, ge=1)
    event_retention_max_per_user: int = Field(default=10000, ge=1)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings or exit with one clear line per bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            reason = "is required" if err["type"] == "missing" else f"is invalid: {err['msg']}"
            print(f"configuration error: {name} {reason}", file=sys.stderr)
        raise SystemExit(2) from None
