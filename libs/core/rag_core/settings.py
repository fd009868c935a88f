"""Settings shared by every service, read from the environment (docs/contract.md §3).

Each service builds its own settings class from mixins (this module's DatabaseSettings and
those of the libraries it uses: S3Settings, EmbeddingSettings, JobSettings,
EventRetentionSettings) so that a worker never demands a variable only the api needs. `load_settings` turns a validation error into
one line naming the variable, because an operator reads that line in a pod log.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_core.event_loop import LoopChoice


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)


class DatabaseSettings(_Base):
    database_url: str
    eventbus_database_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    event_loop: LoopChoice = "auto"  # rag_core/event_loop.py: uvloop when installed, or asyncio's

    @property
    def listen_dsn(self) -> str:
        """LISTEN needs a session-mode connection; a transaction-mode pooler breaks it."""
        return self.eventbus_database_url or self.database_url


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings or exit with one clear line per bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        for err in exc.errors():
            if not err["loc"]:
                # A rule across variables (a model validator): its message names them.
                print(f"configuration error: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
                continue
            name = str(err["loc"][0]).upper()
            reason = "is required" if err["type"] == "missing" else f"is invalid: {err['msg']}"
            print(f"configuration error: {name} {reason}", file=sys.stderr)
        raise SystemExit(2) from None
