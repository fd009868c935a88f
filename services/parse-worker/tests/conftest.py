"""Real processes against a real Postgres and a moto S3: the parse worker as it runs.

`Stack` plays the api's part without the api: it stores an original in the bucket and
inserts, in one transaction, the document, its `original` file row, the parse job,
the events `document.created` + `job.status_updated queued`, and NOTIFY parse_jobs.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection

from rag_core.events import DocumentCreated, Event, JobStatusUpdated
from rag_devstack.postgres import free_port
from rag_devstack.procs import ServiceProcess, venv_command
from rag_devstack.s3 import s3_client
from rag_eventbus import notify_job, publish
from rag_parse_worker.extract import Limits
from rag_parse_worker.isolation import ExtractionPool

FIXTURES = Path(__file__).parent / "fixtures"

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


@dataclass
class Upload:
    document_id: uuid.UUID
    job_id: uuid.UUID
    committed_at: float  # time.time() right after the inserting transaction committed


@dataclass
class Stack:
    dsn: str
    s3: dict[str, str]
    tmp_path: Path
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    workspace_id: uuid.UUID = field(default_factory=uuid.uuid4)
    workers: list[ServiceProcess] = field(default_factory=list)
    _conn: AsyncConnection[Any] | None = None
    _s3: Any = None

    # -- the api's part -----------------------------------------------------

    async def setup(self) -> None:
        self._conn = await AsyncConnection.connect(self.dsn, autocommit=True)
        await self._conn.execute(
            "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'parse tests', %s)",
            (self.workspace_id, self.user_id),
        )
        await self._conn.execute(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'owner')",
            (self.workspace_id, self.user_id),
        )
        self._s3 = s3_client(self.s3)

    async def close(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=15)
        if self._conn is not None:
            await self._conn.close()

    @property
    def conn(self) -> AsyncConnection[Any]:
        assert self._conn is not None
        return self._conn

    async def upload(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        notify: bool = True,
        max_attempts: int = 5,
        shared_key: str | None = None,
    ) -> Upload:
        """`shared_key`: point the file row at an object already stored (cheap bulk uploads)."""
        document_id = uuid.uuid4()
        key = shared_key or f"workspaces/{self.workspace_id}/documents/{document_id}/original"
        if shared_key is None:
            self._s3.put_object(Bucket=self.s3["S3_BUCKET"], Key=key, Body=data)
        content_type = content_type or CONTENT_TYPES.get(Path(filename).suffix, "application/octet-stream")
        sha = hashlib.sha256(data + document_id.bytes).hexdigest()  # unique: tests reuse contents
        async with self.conn.transaction():
            await self.conn.execute(
                "INSERT INTO documents (id, workspace_id, filename, content_type, size_bytes, sha256)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (document_id, self.workspace_id, filename, content_type, len(data), sha),
            )
            await self.conn.execute(
                "INSERT INTO files (document_id, kind, bucket, object_key, size_bytes, content_type)"
                " VALUES (%s, 'original', %s, %s, %s, %s)",
                (document_id, self.s3["S3_BUCKET"], key, len(data), content_type),
            )
            cur = await self.conn.execute(
                "INSERT INTO parse_jobs (document_id, workspace_id, max_attempts) VALUES (%s, %s, %s)"
                " RETURNING id, run_at",
                (document_id, self.workspace_id, max_attempts),
            )
            row = await cur.fetchone()
            assert row is not None
            job_id, run_at = row
            await publish(
                self.conn,
                [
                    Event.of(
                        DocumentCreated(
                            workspace_id=self.workspace_id,
                            document_id=document_id,
                            filename=filename,
                            status="queued",
                        )
                    ),
                    Event.of(
                        JobStatusUpdated(
                            workspace_id=self.workspace_id,
                            job_id=job_id,
                            job_type="parse",
                            document_id=document_id,
                            status="queued",
                            attempt=0,
                            max_attempts=max_attempts,
                            run_at=run_at,
                        )
                    ),
                ],
            )
            if notify:
                await notify_job(self.conn, "parse_jobs", job_id)
        return Upload(document_id, job_id, time.time())

    async def upload_fixture(self, name: str, **kwargs: Any) -> Upload:
        return await self.upload(name, (FIXTURES / name).read_bytes(), **kwargs)

    def put_object(self, key: str, data: bytes) -> str:
        self._s3.put_object(Bucket=self.s3["S3_BUCKET"], Key=key, Body=data)
        return key

    def get_object(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self.s3["S3_BUCKET"], Key=key)["Body"].read()
        return body

    # -- the worker -----------------------------------------------------------

    def worker_env(self, **overrides: Any) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.dsn,
            **self.s3,
            "WORKER_IDLE_SLEEP_SECONDS": "30",
            "WORKER_CONCURRENCY": "2",
            "JOB_LEASE_SECONDS": "30",
            "JOB_MAX_ATTEMPTS": "5",
            "JOB_RETRY_BASE_SECONDS": "0.2",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "10",
            "METRICS_PORT": str(free_port()),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        }
        env.update({k.upper(): str(v) for k, v in overrides.items()})
        return env

    def start_worker(self, name: str = "worker", wait: bool = True, **overrides: Any) -> ServiceProcess:
        env = self.worker_env(**overrides)
        proc = ServiceProcess(
            [venv_command("rag-parse-worker")],
            env,
            log_file=self.tmp_path / f"{name}-{len(self.workers)}.log",
        ).start()
        proc.metrics_port = int(env["METRICS_PORT"])  # type: ignore[attr-defined]
        self.workers.append(proc)
        if wait:
            proc.wait_http(f"http://127.0.0.1:{env['METRICS_PORT']}/readyz", timeout=60)
        return proc

    # -- reading the outcome --------------------------------------------------

    async def job(self, job_id: uuid.UUID, table: str = "parse_jobs") -> dict[str, Any]:
        cur = await self.conn.execute(
            f"SELECT status, attempt, max_attempts, last_error, started_at, locked_by FROM {table} WHERE id = %s",
            (job_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        keys = ("status", "attempt", "max_attempts", "last_error", "started_at", "locked_by")
        return dict(zip(keys, row, strict=True))

    async def document(self, document_id: uuid.UUID) -> dict[str, Any]:
        cur = await self.conn.execute(
            "SELECT status, error, page_count FROM documents WHERE id = %s", (document_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        return {"status": row[0], "error": row[1], "page_count": row[2]}

    async def count(self, query: str, *params: Any) -> int:
        cur = await self.conn.execute(query, params)
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def events(self, document_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """The user's events in stream order: {"type", "status", "job_type", "attempt", "error"}."""
        cur = await self.conn.execute(
            "SELECT id, type, payload FROM events WHERE user_id = %s ORDER BY id", (self.user_id,)
        )
        out = []
        for _, event_type, payload in await cur.fetchall():
            if document_id is not None and payload.get("document_id") != str(document_id):
                continue
            out.append(
                {
                    "type": event_type,
                    "status": payload.get("status"),
                    "job_type": payload.get("job_type"),
                    "attempt": payload.get("attempt"),
                    "error": payload.get("error"),
                    "job_id": payload.get("job_id"),
                }
            )
        return out

    async def wait_for(self, query: str, *params: Any, expect: Any = True, timeout: float = 30) -> None:
        """Poll until the query's single value equals `expect`."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            cur = await self.conn.execute(query, params)
            row = await cur.fetchone()
            last = row[0] if row else None
            if last == expect:
                return
            await _sleep(0.02)
        logs = "\n".join(w.log_text()[-3000:] for w in self.workers)
        raise AssertionError(f"timeout: {query} {params} = {last!r}, wanted {expect!r}\n{logs}")

    async def wait_job(self, job_id: uuid.UUID, status: str, timeout: float = 30) -> None:
        await self.wait_for(
            "SELECT status FROM parse_jobs WHERE id = %s", job_id, expect=status, timeout=timeout
        )


async def _sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


def metrics_text(worker: ServiceProcess) -> str:
    port = worker.metrics_port  # type: ignore[attr-defined]
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def log_lines(worker: ServiceProcess) -> list[dict[str, Any]]:
    lines = []
    for line in worker.log_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@pytest.fixture
async def stack(database_url: str, s3_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(database_url, s3_env, tmp_path)
    await s.setup()
    try:
        yield s
    finally:
        await s.close()


def kill_listener(dsn: str, application_name: str) -> int:
    """pg_terminate_backend the worker's LISTEN connection; returns how many were killed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


@pytest.fixture
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[ExtractionPool]:
    """One extraction child (the real sandboxed process); `indirect` params override the options."""
    options: dict[str, Any] = {
        "size": 1,
        "limits": Limits(),
        "timeout": 30.0,
        **getattr(request, "param", {}),
    }
    p = ExtractionPool(**options)
    await p.start()
    try:
        yield p
    finally:
        await p.close()
