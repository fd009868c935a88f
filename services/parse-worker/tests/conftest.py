"""Real processes against a real Postgres and a moto S3: the parse worker as it runs.

`Stack` plays the api's part without the api: it stores an original in the bucket (at
`rag_core.storage_keys.original_key`) and, in one transaction, inserts the document and its
`original` file row, queues the parse job (`rag_core.queues.queue_document_job`, which rings
parse_jobs) and publishes `document.created` + `job.status_updated queued`. Its workers are
`rag-parse-worker` processes of a `rag_testing.system.System` with no api.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from psycopg import AsyncConnection

from rag_core.document_jobs import job_event
from rag_core.events import DocumentCreated, Event
from rag_core.queues import PARSE_QUEUE, queue_document_job
from rag_core.storage_keys import original_key
from rag_devstack.s3 import s3_client
from rag_eventbus import publish
from rag_parse_worker.extract import Limits, OcrConfig, Tesseract
from rag_parse_worker.extract.ocr import locate_tessdata, missing_languages
from rag_parse_worker.isolation import ExtractionPool
from rag_testing.faults import TcpProxy
from rag_testing.system import Service, System, system_env

FIXTURES = Path(__file__).parent / "fixtures"

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
# The parse queue with a doorbell no worker listens to: a job whose NOTIFY is lost.
UNHEARD_PARSE_QUEUE = dataclasses.replace(PARSE_QUEUE, channel="parse_jobs_nobody_listens")
WORKER_ENV = {
    "WORKER_IDLE_SLEEP_SECONDS": "30",
    "WORKER_CONCURRENCY": "2",
    "JOB_LEASE_SECONDS": "30",
    "JOB_MAX_ATTEMPTS": "5",
    "JOB_RETRY_BASE_SECONDS": "0.2",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "10",
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
    _system: System | None = None
    _proxies: list[TcpProxy] = field(default_factory=list)
    _conn: AsyncConnection[Any] | None = None
    _s3: Any = None

    # -- the api's part -----------------------------------------------------

    async def setup(self) -> None:
        self._system = System(system_env(self.dsn, self.s3, **WORKER_ENV), self.tmp_path)
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
        if self._system is not None:
            self._system.stop()
        for proxy in self._proxies:
            proxy.stop()
        if self._conn is not None:
            await self._conn.close()

    @property
    def conn(self) -> AsyncConnection[Any]:
        assert self._conn is not None
        return self._conn

    @property
    def system(self) -> System:
        assert self._system is not None
        return self._system

    @property
    def workers(self) -> list[Service]:
        return self.system.services

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
        """`shared_key`: point the file row at an object already stored (cheap bulk uploads).
        `notify=False`: the job's NOTIFY goes to a channel nobody listens to (a lost doorbell)."""
        document_id = uuid.uuid4()
        key = shared_key or original_key(self.workspace_id, document_id)
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
            queue = PARSE_QUEUE if notify else UNHEARD_PARSE_QUEUE
            job = await queue_document_job(self.conn, queue, document_id, self.workspace_id, max_attempts)
            created = DocumentCreated(
                workspace_id=self.workspace_id, document_id=document_id, filename=filename, status="queued"
            )
            await publish(self.conn, [Event.of(created), job_event(job, "parse")])
        return Upload(document_id, job.id, time.time())

    async def upload_fixture(self, name: str, **kwargs: Any) -> Upload:
        return await self.upload(name, (FIXTURES / name).read_bytes(), **kwargs)

    def put_object(self, key: str, data: bytes) -> str:
        self._s3.put_object(Bucket=self.s3["S3_BUCKET"], Key=key, Body=data)
        return key

    def get_object(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self.s3["S3_BUCKET"], Key=key)["Body"].read()
        return body

    # -- the worker -----------------------------------------------------------

    def slow_s3(self) -> TcpProxy:
        """A proxy to the bucket's S3 for a worker's `s3_endpoint_url`; set its `latency` once
        the worker is ready (its start checks the bucket) to hold each job that long."""
        proxy = TcpProxy.to_url(self.s3["S3_ENDPOINT_URL"])
        self._proxies.append(proxy)
        return proxy

    def start_worker(self, wait: bool = True, **overrides: Any) -> Service:
        """One more `rag-parse-worker`; `overrides` are settings in lower case (job_lease_seconds=2)."""
        env = {k.upper(): str(v) for k, v in overrides.items()}
        return self.system.add_worker("parse", wait=wait, **env)

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


def metrics_text(worker: Service) -> str:
    return httpx.get(f"{worker.url}/metrics", timeout=5).text


def log_lines(worker: Service) -> list[dict[str, Any]]:
    lines = []
    for line in worker.log_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


async def logged(
    workers: list[Service], event: str, count: int, timeout: float = 10
) -> list[list[dict[str, Any]]]:
    """Each worker's `event` lines, once there are `count` in all (or the timeout passed).

    A worker logs and counts a finished job just after its commit, so a test that has seen the
    row must give the line a moment to follow.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = [[x for x in log_lines(w) if x.get("event") == event] for w in workers]
        if sum(map(len, found)) >= count or time.monotonic() > deadline:
            return found
        await anyio.sleep(0.05)


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


def ocr_config(**overrides: Any) -> OcrConfig:
    """The OCR of this machine; a missing English model FAILS the test with the command that
    installs it (`make test` does, through tools/ensure-debian-packages.sh): a skip would
    only hide a broken setup."""
    tessdata = locate_tessdata()
    if tessdata is None or missing_languages(tessdata, "eng"):
        pytest.fail(
            "Tesseract's English model is missing: install it with `apt-get install -y tesseract-ocr-eng` "
            "(`make test` does, through tools/ensure-debian-packages.sh).",
            pytrace=False,
        )
    return OcrConfig(languages="eng", tessdata=str(tessdata), **overrides)


@pytest.fixture(scope="session")
def ocr() -> Tesseract:
    """One engine for the session, as one extraction process keeps its own."""
    return Tesseract(ocr_config())


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
