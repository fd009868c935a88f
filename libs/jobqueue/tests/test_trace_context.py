"""A traced queue carries its producer's trace context into each run and the run's events.

No SDK is installed in the test process (the services install it only with an OTLP
endpoint): the producer's span comes from a provider of the test's own, and the runtime
runs against the API's no-op tracer, which passes a stored context through unchanged. That
is what a worker with tracing off does with a job queued by a traced api.
"""

from __future__ import annotations

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider

from rag_jobqueue import Job, Lease
from rag_observability.tracing import current_traceparent

from .conftest import TRACED, enqueue_jobs
from .test_worker import all_status, running_worker, wait_until

pytestmark = pytest.mark.anyio


def stored(dsn: str, query: str) -> list[str | None]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(query)]


async def test_the_stored_context_is_the_producers_and_the_run_and_its_events_continue_it(
    jobs_database_url: str,
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("producer") as producer:
        await enqueue_jobs(jobs_database_url, 1, queue=TRACED)
        await enqueue_jobs(jobs_database_url, 1)  # an untraced queue stores nothing, span or not
    await enqueue_jobs(jobs_database_url, 1, queue=TRACED)  # no span current: nothing either
    ids = producer.get_span_context()
    expected = f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"
    assert sorted(stored(jobs_database_url, "SELECT traceparent FROM test_jobs"), key=str) == [
        expected,
        None,
        None,
    ]

    seen: list[str | None] = []

    async def record(job: Job, lease: Lease) -> None:
        seen.append(current_traceparent())

    # One job per claim: a claim of jobs from different traces stores none for its events.
    async with running_worker(jobs_database_url, record, queue=TRACED, worker_concurrency=1):
        await wait_until(all_status(jobs_database_url, "success"))
    assert sorted(seen, key=str) == [expected, None, None]
    # Each job's claim (`running`) and success events carry the context of that job.
    events = stored(jobs_database_url, "SELECT traceparent FROM events WHERE type = 'job.status_updated'")
    assert sorted(events, key=str) == [expected, expected, None, None, None, None]
