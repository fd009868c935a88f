"""The job queues under test, each as a producer (in the bench) and a worker (in a child).

- `ours`: rag_jobqueue.Worker with a DocumentJobKind-style no-op kind on parse_jobs: the claim
  transaction sets the document `parsing` and publishes `job running` + `document parsing`
  through the event bus; the job then completes with `lease.finish` + a `job success` event
  in one transaction (what every real kind does around its work).
- `ours-noevents`: the same runtime, a kind that publishes nothing and touches no document.
- `ours-asyncio`: `ours` on Python's own event loop instead of uvloop (EVENT_LOOP=asyncio),
  to measure the loop. Every other `ours` runs on uvloop, the services' default; the peers
  run on asyncio's loop, theirs.
- `ours-poll`: `ours` with WORKER_LISTEN=false and WORKER_IDLE_SLEEP_SECONDS=1 (the seed).
- `procrastinate`, `pgqueuer`: their default configuration on the same Postgres (their
  own database), a no-op async task. procrastinate runs on psycopg 3 (its only async
  driver); pgqueuer on asyncpg, the driver its CLI picks first. `pgqueuer-psycopg` is
  pgqueuer on its psycopg driver, for the wake-up comparison only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

OURS_SYSTEMS = ("ours", "ours-asyncio", "ours-noevents", "ours-poll")
PEERS = ("procrastinate", "pgqueuer", "pgqueuer-psycopg")
WORKSPACES = 100  # throughput jobs are spread over this many one-member workspaces


def needs_our_schema(system: str) -> bool:
    return system in OURS_SYSTEMS


def url(dsn: str) -> str:
    """A postgresql:// URL for a libpq DSN (asyncpg takes only URLs)."""
    info = conninfo_to_dict(dsn)
    user = info.get("user", "postgres")
    return f"postgresql://{user}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}"


async def pgqueuer_driver(system: str, dsn: str) -> tuple[Any, Any]:
    """(driver, connection) for pgqueuer: asyncpg by default, psycopg for `pgqueuer-psycopg`."""
    if system == "pgqueuer":
        import asyncpg
        from pgqueuer.db import AsyncpgDriver

        conn = await asyncpg.connect(url(dsn))
        return AsyncpgDriver(conn), conn
    from pgqueuer.db import PsycopgDriver

    pconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    return PsycopgDriver(pconn), pconn


# -- producers (bench side) ---------------------------------------------------------------


class Producer:
    """Inserts jobs of one system; `insert_one` returns once the job is committed."""

    def __init__(self, system: str, dsn: str) -> None:
        self.system = system
        self.dsn = dsn
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._workspace: uuid.UUID | None = None
        self._peer: Any = None
        self._pgq_conn: Any = None

    async def open(self) -> None:
        if needs_our_schema(self.system):
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            self._workspace = uuid.uuid4()
            user = uuid.uuid4()
            await self._conn.execute(
                "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'bench', %s)",
                (self._workspace, user),
            )
            await self._conn.execute(
                "INSERT INTO workspace_members VALUES (%s, %s, 'owner')", (self._workspace, user)
            )
        elif self.system == "procrastinate":
            import procrastinate

            app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=self.dsn))

            @app.task(name="noop")
            async def noop() -> None:  # the producer only defers it
                return None

            await app.open_async()
            self._peer = (app, noop)
        elif self.system.startswith("pgqueuer"):
            from pgqueuer import Queries

            driver, self._pgq_conn = await pgqueuer_driver(self.system, self.dsn)
            self._peer = Queries(driver)
        else:
            raise ValueError(self.system)

    async def install(self) -> None:
        """The peer's schema (ours is migrated when the database is made)."""
        if self.system == "procrastinate":
            app, _ = self._peer
            await app.schema_manager.apply_schema_async()
        elif self.system.startswith("pgqueuer"):
            await self._peer.install()

    async def close(self) -> None:
        if self.system == "procrastinate" and self._peer is not None:
            await self._peer[0].close_async()
        if self._conn is not None:
            await self._conn.close()
        if self._pgq_conn is not None:
            await self._pgq_conn.close()

    async def insert_one(self) -> str:
        """One job, committed (with its NOTIFY) when this returns; its key as the worker reports it."""
        if needs_our_schema(self.system):
            assert self._conn is not None
            from rag_core.queues import PARSE_QUEUE, queue_document_job

            async with self._conn.transaction():
                cur = await self._conn.execute(
                    "INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)"
                    " VALUES (%(ws)s, 'bench.txt', 'text/plain', 1, %(sha)s) RETURNING id",
                    {"ws": self._workspace, "sha": uuid.uuid4().hex * 2},
                )
                row = await cur.fetchone()
                assert row is not None
                # As the api queues a parse job: the producer path the wake-up figure includes.
                job = await queue_document_job(self._conn, PARSE_QUEUE, row[0], self._workspace, 5)
            return str(job.id)
        if self.system == "procrastinate":
            _, task = self._peer
            return str(await task.defer_async())
        if self.system.startswith("pgqueuer"):
            ids = await self._peer.enqueue("noop", None)
            return str(ids[0])
        raise ValueError(self.system)

    async def insert_many(self, n: int) -> None:
        """`n` queued jobs, inserted in bulk before any worker runs.

        For us, one INSERT ... SELECT of the job rows, not `enqueue` per job: this is the
        backlog a throughput run starts from, and its insertion is not what is measured.
        """
        if needs_our_schema(self.system):
            assert self._conn is not None
            async with self._conn.transaction():
                await self._conn.execute(
                    "INSERT INTO workspaces (id, name, created_by)"
                    " SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid, 'w' || g,"
                    " gen_random_uuid() FROM generate_series(1, %(w)s) g ON CONFLICT DO NOTHING",
                    {"w": WORKSPACES},
                )
                await self._conn.execute(
                    "INSERT INTO workspace_members (workspace_id, user_id, role)"
                    " SELECT id, created_by, 'owner' FROM workspaces WHERE name LIKE 'w%%'"
                    " ON CONFLICT DO NOTHING"
                )
                await self._conn.execute(
                    "WITH d AS (INSERT INTO documents (workspace_id, filename, content_type, size_bytes, sha256)"
                    " SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(1 + g %% %(w)s), 12, '0'))::uuid,"
                    " 'f.txt', 'text/plain', 1, md5(random()::text) || md5(random()::text)"
                    " FROM generate_series(1, %(n)s) g RETURNING id, workspace_id)"
                    " INSERT INTO parse_jobs (document_id, workspace_id, created_at, run_at)"
                    " SELECT id, workspace_id, now() - interval '1 minute', now() - interval '1 minute' FROM d",
                    {"n": n, "w": WORKSPACES},
                )
            await self._conn.execute("ANALYZE parse_jobs")
            await self._conn.execute("ANALYZE documents")
        elif self.system == "procrastinate":
            _, task = self._peer
            for start in range(0, n, 5000):
                await task.batch_defer_async(*({} for _ in range(min(5000, n - start))))
            await self._peer[0].connector.execute_query_async("ANALYZE procrastinate_jobs")
        elif self.system.startswith("pgqueuer"):
            for start in range(0, n, 5000):
                k = min(5000, n - start)
                await self._peer.enqueue(["noop"] * k, [None] * k, [0] * k)
            await self._peer.driver.execute("ANALYZE pgqueuer")
        else:
            raise ValueError(self.system)

    async def wake_workers(self) -> None:
        """One NOTIFY on our queue's channel: every listening worker claims at once (ours only)."""
        assert self._conn is not None
        from psycopg import sql

        from rag_core.queues import PARSE_QUEUE

        await self._conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(PARSE_QUEUE.channel)))

    async def reset(self) -> None:
        """Empty the queue and everything the last run wrote."""
        if needs_our_schema(self.system):
            assert self._conn is not None
            await self._conn.execute(
                "TRUNCATE parse_jobs, audience_events, audience_streams, user_streams, documents CASCADE"
            )
        elif self.system == "procrastinate":
            await self._peer[0].connector.execute_query_async(
                "TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_workers CASCADE"
            )
        elif self.system.startswith("pgqueuer"):
            await self._peer.driver.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")


# -- workers (child side) ------------------------------------------------------------------

OnStart = Callable[[str], None]


async def run_ours(
    system: str, dsn: str, concurrency: int, on_start: OnStart, ready: Callable[[], None], stop: Any
) -> None:
    """Run rag_jobqueue.Worker until `stop` (an asyncio.Event) is set."""
    import asyncio

    from psycopg_pool import AsyncConnectionPool

    from rag_core.document_jobs import DocumentJobKind, job_event
    from rag_core.queues import PARSE_QUEUE
    from rag_eventbus import publish
    from rag_jobqueue import NO_EFFECTS, ClaimEffects, Job, Lease, Worker
    from rag_jobqueue.settings import JobSettings
    from rag_observability import configure_logging

    # As the worker services do: LOG_LEVEL (default INFO), JSON lines on stderr.
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), "json", service="bench-worker")

    events = system != "ours-noevents"

    class NoopKind(DocumentJobKind):
        queue = PARSE_QUEUE
        job_type = "parse"
        working_status = "parsing"

        def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
            self.pool = pool

        @property
        def claim_effects(self) -> ClaimEffects:
            return super().claim_effects if events else NO_EFFECTS

        async def run(self, job: Job, lease: Lease) -> None:
            on_start(str(job.id))
            async with self.pool.connection() as conn, conn.transaction():
                done = await lease.finish(conn)
                if events:
                    await publish(conn, [job_event(done, "parse")])

    overrides: dict[str, Any] = {"worker_concurrency": concurrency}
    if system == "ours-poll":
        overrides |= {"worker_listen": False, "worker_idle_sleep_seconds": 1.0}
    settings = JobSettings(**overrides)
    # Sized as rag_core.worker_service.serve_worker sizes it.
    async with AsyncConnectionPool(dsn, min_size=1, max_size=concurrency + 3, open=False) as pool:
        await pool.open(wait=True)
        worker = Worker(NoopKind(pool), pool, dsn, settings)
        task = asyncio.create_task(worker.run(stop))
        while not worker.ready and not task.done():  # noqa: ASYNC110 (a property, no event to wait on)
            await asyncio.sleep(0.01)
        ready()
        await task


def procrastinate_worker(dsn: str, concurrency: int, on_start: OnStart) -> tuple[Any, Any]:
    """(app, task function); the app runs with `run_worker_async` in its defaults."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop", pass_context=True)
    async def noop(context: Any) -> None:
        on_start(str(context.job.id))

    return app, noop


def pgqueuer_manager(driver: Any, concurrency: int, on_start: OnStart) -> Any:
    from pgqueuer import Queries, QueueManager

    qm = QueueManager(Queries(driver))

    @qm.entrypoint("noop", concurrency_limit=concurrency)
    async def noop(job: Any) -> None:
        on_start(str(job.id))

    return qm
