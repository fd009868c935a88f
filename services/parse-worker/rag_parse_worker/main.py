"""`rag-parse-worker`: claims parse jobs until SIGTERM/SIGINT.

The process shell (settings, logging, pool, object store, probes on METRICS_PORT,
graceful stop) is rag_core's `serve_worker`, shared with the ingest worker; this
module configures logging (before the extraction processes start, so that their
lines look like the rest) and adds those processes around it, then tracing (after them:
the children trace nothing, and start without the exporter's thread).
"""

from __future__ import annotations

import sys
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from rag_core import event_loop
from rag_core.settings import load_settings
from rag_core.worker_service import serve_worker
from rag_observability import configure_logging, configure_tracing
from rag_parse_worker.extract import OcrConfig
from rag_parse_worker.isolation import ExtractionPool
from rag_parse_worker.kind import ParseKind
from rag_parse_worker.settings import ParseWorkerSettings
from rag_storage import ObjectStore

SERVICE = "rag-parse-worker"
log = structlog.get_logger("rag_parse_worker")


def _log_ocr(settings: ParseWorkerSettings, ocr: OcrConfig | None) -> None:
    if ocr is not None:
        log.info("ocr_enabled", languages=ocr.languages, tessdata=ocr.tessdata, max_pages=ocr.max_pages)
    elif settings.ocr_provider is None:
        log.warning(
            "ocr_unavailable",
            reason=f"no Tesseract model for {settings.ocr_languages} is installed (OCR_PROVIDER unset)",
        )
    else:
        log.info("ocr_disabled", reason="OCR_PROVIDER=off")


async def serve(settings: ParseWorkerSettings, ocr: OcrConfig | None) -> None:
    configure_logging(settings.log_level, settings.log_format, service=SERVICE)
    _log_ocr(settings, ocr)
    extractor = ExtractionPool(
        size=settings.worker_concurrency,
        limits=settings.limits(),
        timeout=settings.parse_timeout_seconds,
        memory_limit_mb=settings.parse_memory_limit_mb,
        ocr=ocr,
    )
    await extractor.start()
    tracing = configure_tracing(SERVICE)

    def build_kind(pool: AsyncConnectionPool[Any], store: ObjectStore) -> ParseKind:
        return ParseKind(pool, store, extractor, settings)

    try:
        await serve_worker(SERVICE, settings, build_kind)
    finally:
        await extractor.close()
        if tracing is not None:
            tracing.shutdown()


def main() -> None:
    settings = load_settings(ParseWorkerSettings)
    try:
        ocr = settings.ocr_config()
    except ValueError as exc:  # OCR_PROVIDER=tesseract without its models: the operator must know now
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    event_loop.run(serve(settings, ocr), settings.event_loop)


if __name__ == "__main__":
    main()
