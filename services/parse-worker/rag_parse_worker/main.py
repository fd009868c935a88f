"""`rag-parse-worker`: claims parse jobs until SIGTERM/SIGINT.

The process shell (settings, logging, pool, object store, probes on METRICS_PORT,
graceful stop) is rag_core's `serve_worker`, shared with the ingest worker; this
module configures logging (before the extraction processes start, so that their
lines look like the rest) and adds those processes around it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg_pool import AsyncConnectionPool

from rag_core.settings import load_settings
from rag_core.worker_service import serve_worker
from rag_observability import configure_logging
from rag_parse_worker.isolation import ExtractionPool
from rag_parse_worker.kind import ParseKind
from rag_parse_worker.settings import ParseWorkerSettings
from rag_storage import ObjectStore

SERVICE = "rag-parse-worker"


async def serve(settings: ParseWorkerSettings) -> None:
    configure_logging(settings.log_level, settings.log_format, service=SERVICE)
    extractor = ExtractionPool(
        size=settings.worker_concurrency,
        limits=settings.limits(),
        timeout=settings.parse_timeout_seconds,
        memory_limit_mb=settings.parse_memory_limit_mb,
    )
    await extractor.start()

    def build_kind(pool: AsyncConnectionPool[Any], store: ObjectStore) -> ParseKind:
        return ParseKind(pool, store, extractor, settings)

    try:
        await serve_worker(SERVICE, settings, build_kind)
    finally:
        await extractor.close()


def main() -> None:
    settings = load_settings(ParseWorkerSettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
