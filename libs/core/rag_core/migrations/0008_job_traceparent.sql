-- The trace context a parse or ingest job was queued in: the W3C traceparent of the span
-- current at enqueue (the upload request's, the parse job's), NULL when tracing is off or the
-- producer ran outside a trace. The worker that claims the job continues that trace
-- (rag_jobqueue: a queue with `traced=True`; docs/observability.md). Nullable, no default:
-- adding it rewrites nothing.

ALTER TABLE parse_jobs ADD COLUMN traceparent text;
ALTER TABLE ingest_jobs ADD COLUMN traceparent text;
