"""The worker loop that runs one queue's jobs, whatever the queue.

The loop: clear the wake-up event, THEN claim up to free capacity; if nothing was
claimed, wait for a NOTIFY, a freed slot, the next retry's due time or the idle
timeout. Clearing before the claim means a NOTIFY that lands during the claim is
never wiped (procrastinate's 5 s stalls).
The NOTIFY handler only sets the event; the loop does every database call, and
a listener reconnect sets the event too (what was notified meanwhile is lost).

Leases: claimed jobs get `locked_until = now() + JOB_LEASE_SECONDS`, renewed by
one heartbeat per lease/3 for all jobs in flight. A job whose heartbeat comes
back empty was taken over: its task is cancelled and its writes are fenced out.
Expired leases of dead workers are rescued by the same loop (a takeover is a new
claim, with the next attempt). On stop: claim nothing more, let running jobs
finish within the grace period, then release the rest without burning an attempt.

Tracing: each run of a job is one span, `<queue> job`, the child of the trace context the
job row stores (a traced queue's `traceparent`) or a new trace's root; the kind's own spans
and every log line of the run sit inside it. The claim's events carry the context of the
jobs it started when they share one; a lost lease and a release at shutdown get spans of
their own in the job's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from rag_eventbus import Listener, Publishable, notify_job, publish, wakeup_listener
from rag_jobqueue import metrics
from rag_jobqueue.depth import sample_depth_forever
from rag_jobqueue.errors import LeaseLost, PermanentJobError, with_reference
from rag_jobqueue.kind import JobKind
from rag_jobqueue.lease import Lease
from rag_jobqueue.queries import QueueSQL, claimed
from rag_jobqueue.queue import Job
from rag_jobqueue.settings import JobSettings
from rag_observability.tracing import SpanKind, mark_failed, span
from rag_retry import RetryPolicy

log = structlog.get_logger("rag_jobqueue")

# Waits between claims while the database fails: short at first (a blip), 5 s at most.
DB_RETRY = RetryPolicy(base_seconds=0.1, max_seconds=5.0)
JOB_RETRY_MAX_SECONDS = 300.0


def job_retry_policy(settings: JobSettings) -> RetryPolicy:
    """When a failed job runs again (docs/jobs.md, JOB_RETRY_BASE_SECONDS): base * 2^(attempt-1),
    capped at 300 s, with rag_retry's equal jitter, so the retries of a burst spread out."""
    return RetryPolicy(base_seconds=settings.job_retry_base_seconds, max_seconds=JOB_RETRY_MAX_SECONDS)


def default_worker_id(queue: str) -> str:
    return f"{queue}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs one JobKind's jobs until `stop` is set."""

    def __init__(
        self,
        kind: JobKind,
        pool: AsyncConnectionPool[Any],
        listen_dsn: str,
        settings: JobSettings,
        *,
        concurrency: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.kind = kind
        self.queue = kind.queue
        self.pool = pool
        self.settings = settings
        self._job_retry = job_retry_policy(settings)
        self.concurrency = concurrency or settings.worker_concurrency
        self.worker_id = worker_id or default_worker_id(self.queue.name)
        self._sql = QueueSQL(self.queue, kind.claim_effects)
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._inflight: dict[uuid.UUID, tuple[asyncio.Task[None], Lease]] = {}
        self._listener: Listener | None = (
            wakeup_listener(listen_dsn, [self.queue.channel], self._wake) if settings.worker_listen else None
        )
        self._last_rescue = 0.0
        self._db_ok = False

    @property
    def ready(self) -> bool:
        """Readiness: listening for wake-ups (or polling only, by configuration) and DB reachable."""
        if self._listener is None:
            return self._db_ok
        return self._listener.is_connected

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def run(self, stop: asyncio.Event) -> None:
        labels = {"queue": self.queue.name}
        if self._listener is not None:
            self._listener.start()
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"{self.queue.name}-heartbeat")
        background = [heartbeat]
        if self.settings.queue_metrics_interval_seconds > 0:
            depth = sample_depth_forever(
                self.pool, self.queue, self._sql, self.settings.queue_metrics_interval_seconds
            )
            background.append(asyncio.create_task(depth, name=f"{self.queue.name}-depth"))
        db_failures = 0
        log.info("worker_started", queue=self.queue.name, worker=self.worker_id, concurrency=self.concurrency)
        try:
            while not stop.is_set():
                self._wake.clear()
                self._slot_freed.clear()
                free = self.concurrency - len(self._inflight)
                claimed = 0
                due_in: float | None = None
                if free > 0:
                    try:
                        claimed, due_in = await self._claim_and_start(free)
                        self._db_ok = True
                        db_failures = 0
                    except (psycopg.Error, OSError) as exc:
                        self._db_ok = False
                        log.warning("worker_db_error", queue=self.queue.name, error=str(exc))
                        db_failures += 1
                        await _wait_any([stop.wait()], timeout=DB_RETRY.backoff(db_failures))
                        continue
                    if claimed == free:
                        continue  # more may be waiting; the next turn waits for a free slot
                timeout = self.settings.worker_idle_sleep_seconds
                if due_in is not None:
                    timeout = min(timeout, max(due_in, 0.0) + 0.005)
                rescue_in = self._rescue_interval - (time.monotonic() - self._last_rescue)
                timeout = max(0.0, min(timeout, rescue_in))
                cause = await _wait_any(
                    [self._wake.wait(), self._slot_freed.wait(), stop.wait()],
                    timeout=timeout,
                    names=["notify", "slot", "stop"],
                )
                metrics.WAKEUPS.labels(cause=cause, **labels).inc()
                if self._listener is not None:
                    metrics.LISTENER_CONNECTED.labels(**labels).set(int(self._listener.is_connected))
                    metrics.LISTENER_RECONNECTS.labels(**labels).set(self._listener.reconnects)
        finally:
            await self._shutdown()
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._listener is not None:
                await self._listener.stop()
            log.info("worker_stopped", queue=self.queue.name, worker=self.worker_id)

    @property
    def _rescue_interval(self) -> float:
        return max(0.05, self.settings.job_lease_seconds / 3)

    # -- claiming --------------------------------------------------------------

    async def _claim_and_start(self, free: int) -> tuple[int, float | None]:
        """Claim up to `free` jobs and start them: (how many, seconds until the next queued
        job is due when fewer than `free` were claimed; None: none queued, or not asked)."""
        jobs: list[Job] = []
        due_in: float | None = None
        if time.monotonic() - self._last_rescue >= self._rescue_interval:
            self._last_rescue = time.monotonic()
            await self._fail_exhausted(free)
            jobs += (await self._claim(self._sql.rescue, free, takeover=True))[0]
        if len(jobs) < free:
            fresh, due_in = await self._claim(self._sql.claim, free - len(jobs), takeover=False)
            jobs += fresh
        for job in jobs:
            lease = Lease(job, self.worker_id, self._sql)
            task = asyncio.create_task(self._execute(job, lease), name=f"{self.queue.name}:{job.id}")
            self._inflight[job.id] = (task, lease)
        metrics.IN_FLIGHT.labels(queue=self.queue.name).set(len(self._inflight))
        return len(jobs), due_in

    async def _claim(self, statement: Any, limit: int, *, takeover: bool) -> tuple[list[Job], float | None]:
        """Claim, run the kind's claim effects and publish them: one statement, in autocommit,
        so one round trip (queries.claim_statement). Also, for a new claim that came back
        short, the seconds until the next queued job is due."""
        async with self.pool.connection() as conn, _autocommit(conn):
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(statement, self._claim_params(limit))
                rows = await cur.fetchall()
        started, due_in = claimed(rows)
        kind = "takeover" if takeover else "new"
        metrics.JOBS_CLAIMED.labels(queue=self.queue.name, kind=kind).inc(len(started))
        if takeover and started:
            log.warning("jobs_taken_over", queue=self.queue.name, jobs=[str(j.id) for j in started])
        return started, due_in

    def _claim_params(self, limit: int) -> dict[str, Any]:
        """What every statement that takes jobs under this worker's lease is given."""
        return {"limit": limit, "worker": self.worker_id, "lease": self.settings.job_lease_seconds}

    async def _fail_exhausted(self, limit: int) -> None:
        """Fail the expired jobs that have no attempt left: their owners kept dying (a crash
        or an OOM on this input), so they are not run again. Rare, so in Python: the error
        names each job, and the kind's `on_failed` publishes its events."""
        async with self.pool.connection() as conn, conn.transaction():
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(self._sql.rescue_exhausted, self._claim_params(limit))
                rows = await cur.fetchall()
            events: list[Publishable] = []
            for row in rows:
                job = Job.from_row(row)
                error = with_reference(
                    f"Processing was interrupted {job.max_attempts} times; giving up.", job.id
                )
                failed = await self._transition(conn, self._sql.fail, job, error=error)
                if failed is not None:
                    events += await self.kind.on_failed(conn, failed, error)
            await publish(conn, events)
        if rows:
            log.warning("jobs_given_up", queue=self.queue.name, jobs=[str(row["id"]) for row in rows])

    # -- running ---------------------------------------------------------------

    async def _execute(self, job: Job, lease: Lease) -> None:
        # The job's references (its table's other `*_id` columns: the rows it is about) go
        # into every log line of the run, whatever the queue.
        references = {k: str(v) for k, v in job.row.items() if k.endswith("_id") and v is not None}
        structlog.contextvars.bind_contextvars(
            **references, job_id=str(job.id), queue=self.queue.name, attempt=job.attempt
        )
        attributes: dict[str, str | int] = {
            "job.id": str(job.id),
            "job.queue": self.queue.name,
            "job.attempt": job.attempt,
        }
        with span(
            f"{self.queue.name} job",
            parent=job.row.get("traceparent"),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as current:
            outcome = await self._run(job, lease)
            current.set_attribute("job.outcome", outcome)
            if outcome in ("failed", "retry"):
                mark_failed(current, outcome)

    async def _run(self, job: Job, lease: Lease) -> str:
        """Run the kind's work and record its outcome (Cancelled, for a lost lease or a
        shutdown, propagates: the runtime handles the row)."""
        started = time.perf_counter()
        outcome = "success"
        try:
            async with asyncio.timeout(self.kind.timeout_seconds):
                await self.kind.run(job, lease)
            log.info("job_succeeded", seconds=round(time.perf_counter() - started, 4))
        except LeaseLost:
            outcome = "lease_lost"
            log.warning("job_lease_lost")
        except PermanentJobError as exc:
            outcome = "failed"
            # Its message is written for users; what caused it (even if raised `from None`) is logged.
            cause = exc.__cause__ or exc.__context__
            await self._finish_badly(job, str(exc), permanent=True, cause=cause)
        except TimeoutError:
            outcome = "failed"
            message = f"Processing took longer than {self.kind.timeout_seconds:g} seconds and was stopped."
            await self._finish_badly(job, message, permanent=True)
        except asyncio.CancelledError:
            outcome = "cancelled"  # lease lost or shutdown: the runtime handles the row
            raise
        except Exception as exc:
            # The exception's text (hosts, URLs, upstream bodies) stays in the log, under
            # this job's id; the job's error is the kind's sentence for it plus that id.
            log.warning("job_failed_transiently", error=repr(exc), error_type=type(exc).__qualname__)
            outcome = "retry"
            await self._finish_badly(job, self.kind.user_message(exc), permanent=False)
        finally:
            metrics.JOB_SECONDS.labels(queue=self.queue.name).observe(time.perf_counter() - started)
            metrics.JOBS_FINISHED.labels(queue=self.queue.name, outcome=outcome).inc()
            if outcome != "cancelled":
                self._forget(job.id)
        return outcome

    def _forget(self, job_id: uuid.UUID) -> None:
        self._inflight.pop(job_id, None)
        metrics.IN_FLIGHT.labels(queue=self.queue.name).set(len(self._inflight))
        self._slot_freed.set()

    async def _finish_badly(
        self, job: Job, sentence: str, *, permanent: bool, cause: BaseException | None = None
    ) -> None:
        """Retry later, or fail for good (permanent, or out of attempts). Fenced.

        `sentence` is what the user reads; the stored error adds the job id as a reference.
        """
        final = permanent or job.attempt >= job.max_attempts
        gave_up_after = job.attempt if final and not permanent else None
        error = with_reference(sentence, job.id, gave_up_after=gave_up_after)
        if cause is not None:
            log.info("job_failure_cause", cause=repr(cause), cause_type=type(cause).__qualname__)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                if final:
                    updated = await self._transition(conn, self._sql.fail, job, error=error)
                    events = await self.kind.on_failed(conn, updated, error) if updated else []
                else:
                    delay = self._job_retry.backoff(job.attempt)
                    updated = await self._transition(conn, self._sql.retry, job, error=error, delay=delay)
                    events = await self.kind.on_retry(conn, updated, error) if updated else []
                await publish(conn, events)
            if updated is None:
                log.warning("job_lease_lost_before_failure", error=error)
            else:
                log.info("job_failed" if final else "job_retry_scheduled", error=error, permanent=permanent)
        except (psycopg.Error, OSError) as exc:
            # The lease will expire and the job will be taken over: nothing is lost.
            log.error("job_failure_not_recorded", error=str(exc))

    async def _transition(self, conn: Any, statement: Any, job: Job, **params: Any) -> Job | None:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                statement, {"id": job.id, "worker": self.worker_id, "attempt": job.attempt, **params}
            )
            row = await cur.fetchone()
        return None if row is None else Job.from_row(row)

    # -- leases ----------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.job_lease_seconds / 3)
            if not self._inflight:
                continue
            leases = {job_id: lease for job_id, (_, lease) in self._inflight.items()}
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(
                        self._sql.heartbeat,
                        {
                            "ids": list(leases),
                            "worker": self.worker_id,
                            "lease": self.settings.job_lease_seconds,
                        },
                    )
                    alive = {(job_id, attempt) for job_id, attempt in await cur.fetchall()}
            except (psycopg.Error, OSError) as exc:
                log.warning("heartbeat_failed", queue=self.queue.name, error=str(exc))
                continue
            for job_id, lease in leases.items():
                if (job_id, lease.job.attempt) not in alive and job_id in self._inflight:
                    # Outside the run's task: its own (instant) span puts the line in the job's trace.
                    with span(f"{self.queue.name} lease lost", parent=lease.job.row.get("traceparent")):
                        log.warning("lease_lost", job_id=str(job_id), queue=self.queue.name)
                    lease.lost.set()
                    task, _ = self._inflight[job_id]
                    task.cancel()
                    self._forget(job_id)

    # -- shutdown --------------------------------------------------------------

    async def _shutdown(self) -> None:
        if not self._inflight:
            return
        tasks = [task for task, _ in self._inflight.values()]
        log.info(
            "worker_draining", jobs=len(tasks), grace_seconds=self.settings.worker_shutdown_grace_seconds
        )
        await asyncio.wait(tasks, timeout=self.settings.worker_shutdown_grace_seconds)
        remaining = list(self._inflight.values())
        for task, _ in remaining:
            task.cancel()
        await asyncio.gather(*(task for task, _ in remaining), return_exceptions=True)
        for _, lease in remaining:
            await self._release(lease.job)
            self._forget(lease.job.id)

    async def _release(self, job: Job) -> None:
        # A span of its own in the job's trace: its lines and its `queued` event belong there.
        with span(f"{self.queue.name} job release", parent=job.row.get("traceparent")):
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    released = await self._transition(conn, self._sql.release, job)
                    if released is None:
                        return
                    await publish(conn, await self.kind.on_released(conn, released))
                    await notify_job(conn, self.queue.channel, job.id)
                log.info("job_released", job_id=str(job.id), queue=self.queue.name)
            except (psycopg.Error, OSError) as exc:
                log.error("job_release_failed", job_id=str(job.id), error=str(exc))


@contextlib.asynccontextmanager
async def _autocommit(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """`conn` in autocommit for one statement that is its own transaction: no BEGIN and
    COMMIT of its own to wait for. Set back before the pool takes the connection back."""
    await conn.set_autocommit(True)
    try:
        yield
    finally:
        await conn.set_autocommit(False)


async def _wait_any(awaitables: list[Awaitable[Any]], timeout: float, names: list[str] | None = None) -> str:
    """Wait for the first of `awaitables` (or the timeout); return its name or 'poll'."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    if names:
        for name, task in zip(names, tasks, strict=True):
            if task in done:
                return name
    return "poll"
