"""Settings of `rag-ingest-worker` (docs/contract.md §3)."""

from __future__ import annotations

from pydantic import Field

from rag_core.worker_service import WorkerServiceSettings
from rag_embedding.settings import EmbeddingSettings


class IngestWorkerSettings(WorkerServiceSettings, EmbeddingSettings):
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    # Additions (docs/ingest.md): batch size of one embedding call, and the size
    # of parsed text the worker accepts (the parse worker caps it lower already).
    ingest_embed_batch_size: int = Field(default=32, ge=1, le=2048)
    ingest_max_text_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
