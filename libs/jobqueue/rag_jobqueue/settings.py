"""How the job runtime claims, leases and retries (docs/contract.md §3, docs/jobs.md): a settings mixin."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class JobSettings(BaseSettings):
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    worker_idle_sleep_seconds: float = Field(default=5.0, gt=0)
    job_lease_seconds: float = Field(default=30.0, gt=0)
    job_max_attempts: int = Field(default=5, ge=1)
    # Not in docs/contract.md §3 (additions, documented in docs/jobs.md):
    job_retry_base_seconds: float = Field(default=2.0, ge=0)
    worker_shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    worker_listen: bool = True  # false: poll only (benchmarks, pgbouncer without a direct DSN)
    # How often each worker reads its queue's depth for the rag_queue_* metrics (depth.py); 0: never.
    queue_metrics_interval_seconds: float = Field(default=15.0, ge=0)
