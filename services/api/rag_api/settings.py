"""The api's settings: everything of docs/contract.md §3 that the gateway reads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rag_core.settings import DatabaseSettings
from rag_embedding.settings import EmbeddingSettings
from rag_eventbus.settings import BrokerSettings, EventRetentionSettings
from rag_jobqueue.settings import JobSettings
from rag_storage.settings import S3Settings


class ApiSettings(
    DatabaseSettings, S3Settings, EmbeddingSettings, EventRetentionSettings, BrokerSettings, JobSettings
):
    jwt_secret: str = Field(min_length=1)
    jwt_audience: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # Connections the kernel queues before hypercorn accepts them. hypercorn's default (100)
    # drops SYNs when thousands of clients reconnect at once (a replica restart): each
    # dropped one retries after 1, 2, 4... s (docs/benchmarks.md, reconnect storm). Linux
    # caps it at net.core.somaxconn (4096 by default since 5.4).
    api_listen_backlog: int = Field(default=4096, ge=1, le=65535)
    max_upload_bytes: int = Field(default=52_428_800, ge=1)
    ws_send_queue_max: int = Field(default=1000, ge=1)
    answer_concurrency: int = Field(default=4, ge=1)
    llm_provider: Literal["extractive", "openai"] = "extractive"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    # Limits against hostile or runaway clients (docs/contract.md §3, docs/security.md).
    # The refusals they cause are built in one place: rag_api/limits.py.
    max_upload_files: int = Field(default=100, ge=1)
    max_concurrent_uploads_per_user: int = Field(default=4, ge=1)
    request_read_timeout_seconds: float = Field(default=30.0, gt=0)
    ws_max_connections_per_user: int = Field(default=20, ge=1)
    ws_max_frame_bytes: int = Field(default=65536, ge=128)
    # permessage-deflate (rag_api/ws_compression.py): refused by default, it costs ~100 KiB
    # of zlib state per socket for little gain on small JSON frames.
    ws_compression: bool = False
    ws_compression_window_bits: int = Field(default=11, ge=9, le=15)
    ws_compression_min_bytes: int = Field(default=512, ge=0)
    max_workspaces_per_user: int = Field(default=100, ge=1)
    workspace_max_members: int = Field(default=1000, ge=1)
    questions_per_minute: int = Field(default=20, ge=1)
    max_question_chars: int = Field(default=4000, ge=1)
    db_statement_timeout_seconds: float = Field(default=15.0, gt=0)
    orphan_sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    # The sweeper's safety margin and its multipart cut-off (rag_api/sweeper.py); tests use 0.
    orphan_min_age_seconds: float = Field(default=3600.0, ge=0)
    multipart_max_age_seconds: float = Field(default=86400.0, ge=0)
