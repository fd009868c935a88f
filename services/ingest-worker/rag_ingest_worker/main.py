"""`rag-ingest-worker`: run the ingest queue until SIGTERM/SIGINT.

The compute children (one per WORKER_CONCURRENCY slot) start before the first claim and
are killed when the worker stops. Tracing is configured after they start: they trace nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from psycopg_pool import AsyncConnectionPool

from rag_core import event_loop
from rag_core.settings import load_settings
from rag_core.worker_service import serve_worker
from rag_embedding import EmbeddingConfigurationError, build_embedder
from rag_ingest_worker.compute import ComputePool
from rag_ingest_worker.kind import IngestKind
from rag_ingest_worker.settings import IngestWorkerSettings
from rag_observability import Tracing, configure_logging, configure_tracing
from rag_storage import ObjectStore


def main() -> None:
    settings = load_settings(IngestWorkerSettings)
    configure_logging(settings.log_level, settings.log_format, service="ingest-worker")
    try:
        embedder = build_embedder(settings)
    except EmbeddingConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    compute = ComputePool(settings.worker_concurrency)
    tracing: Tracing | None = None

    def build(pool: AsyncConnectionPool[Any], store: ObjectStore) -> IngestKind:
        return IngestKind(
            pool,
            store,
            embedder,
            compute,
            batch_size=settings.ingest_embed_batch_size,
            max_text_bytes=settings.ingest_max_text_bytes,
        )

    try:
        compute.start()
        tracing = configure_tracing("rag-ingest-worker")
        event_loop.run(serve_worker("ingest-worker", settings, build), settings.event_loop)
    finally:
        compute.close()
        if tracing is not None:
            tracing.shutdown()


if __name__ == "__main__":
    main()
