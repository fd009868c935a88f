"""The api's settings: everything of CONTRACT.md §3 that the gateway reads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rag_schema.settings import (
    DatabaseSettings,
    EmbeddingSettings,
    EventRetentionSettings,
    JobSettings,
    S3Settings,
)


class ApiSettings(DatabaseSettings, S3Settings, EmbeddingSettings, EventRetentionSettings, JobSettings):
    jwt_secret: str = Field(min_length=1)
    jwt_audience: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    max_upload_bytes: int = Field(default=52_428_800, ge=1)
    ws_send_queue_max: int = Field(default=1000, ge=1)
    answer_concurrency: int = Field(default=4, ge=1)
    llm_provider: Literal["extractive", "openai"] = "extractive"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
