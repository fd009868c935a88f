"""The process around a Worker: what `rag-parse-worker` and `rag-ingest-worker` share.

The caller has loaded the settings (`load_settings`: one clear line on error) and
configured logging; here a connection pool and the object store are opened, the
probe server started on METRICS_PORT (0 disables it), and SIGTERM/SIGINT turned
into a graceful stop: no new claims, running jobs finish within
WORKER_SHUTDOWN_GRACE_SECONDS, the rest is released.

It lives in the domain library, not in rag_jobqueue, because it opens the object
store and reads the product's settings: the job runtime itself needs neither.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from rag_core.event_loop import loop_name
from rag_core.settings import DatabaseSettings
from rag_jobqueue import JobKind
from rag_jobqueue.settings import JobSettings
from rag_jobqueue.worker import Worker
from rag_observability import ProbeServer
from rag_storage import ObjectStore, StorageError
from rag_storage.settings import S3Settings

log = structlog.get_logger("rag_core.worker_service")


class WorkerServiceSettings(DatabaseSettings, S3Settings, JobSettings):
    """What every worker reads; each worker subclasses it with its own METRICS_PORT default."""

    metrics_port: int = 0


KindFactory = Callable[[AsyncConnectionPool[Any], ObjectStore], JobKind]


async def serve_worker(name: str, settings: WorkerServiceSettings, build_kind: KindFactory) -> None:
    """Run one worker process until SIGTERM/SIGINT."""
    log.info("event_loop", loop=loop_name())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=settings.worker_concurrency + 3,
        open=False,
        kwargs={"application_name": name},
    )
    await pool.open(wait=False)
    async with ObjectStore(settings) as store:
        try:
            await store.check_bucket()
        except StorageError as exc:
            # Not fatal: jobs retry while the store is away; say it loudly once.
            log.error("object_store_unreachable_at_start", error=str(exc), bucket=settings.s3_bucket)
        worker = Worker(build_kind(pool, store), pool, settings.listen_dsn, settings)
        probes = ProbeServer(settings.metrics_port, lambda: worker.ready) if settings.metrics_port else None
        if probes is not None:
            await probes.start()
        try:
            await worker.run(stop)
        finally:
            if probes is not None:
                await probes.stop()
            await pool.close()
