"""Prometheus metrics of the job runtime, labelled by queue."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS_CLAIMED = Counter("rag_jobs_claimed_total", "Jobs claimed", ["queue", "kind"])  # kind: new|takeover
JOBS_FINISHED = Counter("rag_jobs_finished_total", "Job runs by outcome", ["queue", "outcome"])
JOB_SECONDS = Histogram("rag_job_seconds", "Duration of job runs", ["queue"])
WAKEUPS = Counter("rag_worker_wakeups_total", "Loop wake-ups by cause", ["queue", "cause"])
IN_FLIGHT = Gauge("rag_jobs_in_flight", "Jobs running in this process", ["queue"])
LISTENER_CONNECTED = Gauge(
    "rag_worker_listener_connected", "1 while the wake-up listener is connected", ["queue"]
)
LISTENER_RECONNECTS = Gauge(
    "rag_worker_listener_reconnects", "Reconnections of the wake-up listener", ["queue"]
)
