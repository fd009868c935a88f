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
# The queue as a whole (every worker of the queue reports the same figures: aggregate with max),
# sampled every QUEUE_METRICS_INTERVAL_SECONDS by depth.py: what HPA/KEDA scale and alerts watch.
QUEUE_DEPTH = Gauge("rag_queue_depth", "Queued jobs that are due (run_at reached)", ["queue"])
QUEUE_DELAYED = Gauge(
    "rag_queue_delayed_jobs", "Queued jobs waiting for a later run_at (retry backoff)", ["queue"]
)
QUEUE_RUNNING = Gauge("rag_queue_running_jobs", "Jobs running in any worker", ["queue"])
QUEUE_OLDEST_AGE = Gauge(
    "rag_queue_oldest_job_age_seconds", "How long the oldest due queued job has waited (0: none)", ["queue"]
)
QUEUE_SAMPLED = Gauge(
    "rag_queue_sampled_timestamp_seconds", "When the queue figures were last read (Unix time)", ["queue"]
)
