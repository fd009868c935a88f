"""Real `rag-api` processes (hypercorn) against the test Postgres and a moto S3.

`api_factory(**env)` starts one api process per call on a free port, with DATABASE_URL,
S3_*, JWT_SECRET and logging set (keyword arguments override or add environment
variables, e.g. `api_factory(MAX_UPLOAD_BYTES="1000")`), waits for /readyz (unless
`wait_ready=False`) and stops every process it started after the test. Two calls give
two replicas on the same database and bucket.

The returned `ApiProcess` carries what tests need: `url`, `ws_url`, `token(user)`,
`user()` (an `ApiUser` with an authenticated httpx client), `sql(...)` on the same
database, `s3_keys()` of the bucket, the process (`pid`, `rss_kb()`, `log_text()`).

`shared_api` is one api per test module on its own database and bucket, for the many
tests that only need fresh users and workspaces (it saves a process start per test).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from rag_core.tokens import mint_token
from rag_devstack.postgres import free_port
from rag_devstack.procs import ServiceProcess, venv_command
from rag_devstack.s3 import bucket_contents, ensure_bucket, s3_client
from rag_devstack.s3 import s3_env as s3_env_for
from rag_testing.pytest_plugin import cloned_database

JWT_SECRET = "test-jwt-secret-for-the-api-suite-" + "0123456789abcdef" * 2
FileSpec = tuple[str, bytes] | tuple[str, bytes, str]


@dataclass
class ApiUser:
    """A user id and an httpx client that sends its token."""

    id: UUID
    client: httpx.Client

    def create_workspace(self, name: str = "workspace") -> dict[str, Any]:
        response = self.client.post("/api/workspaces", json={"name": name})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def add_member(self, workspace_id: object, user_id: object, role: str = "member") -> httpx.Response:
        return self.client.post(
            f"/api/workspaces/{workspace_id}/members", json={"user_id": str(user_id), "role": role}
        )

    def upload_raw(self, workspace_id: object, body: bytes, content_type: str) -> httpx.Response:
        return self.client.post(
            f"/api/workspaces/{workspace_id}/documents/upload",
            content=body,
            headers={"Content-Type": content_type},
        )

    def upload(self, workspace_id: object, files: Sequence[FileSpec]) -> httpx.Response:
        parts = [
            ("files", spec if len(spec) == 3 else (spec[0], spec[1], "application/octet-stream"))
            for spec in files
        ]
        return self.client.post(f"/api/workspaces/{workspace_id}/documents/upload", files=parts)


@dataclass
class ApiProcess:
    url: str
    port: int
    env: dict[str, str]
    process: ServiceProcess
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/api/ws"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def bucket(self) -> str:
        return self.env["S3_BUCKET"]

    def token(self, user_id: UUID, ttl_seconds: int = 3600) -> str:
        return mint_token(user_id, self.env.get("JWT_SECRET", JWT_SECRET), ttl_seconds)

    def client(self, token: str | None = None, timeout: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._clients.append(client)
        return client

    def user(self, user_id: UUID | None = None) -> ApiUser:
        user_id = user_id or uuid.uuid4()
        return ApiUser(user_id, self.client(self.token(user_id)))

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def s3(self) -> Any:
        return s3_client(self.env)

    def s3_keys(self, prefix: str = "") -> list[str]:
        return bucket_contents(self.env, prefix)[0]

    def s3_uploads_in_progress(self) -> list[str]:
        return bucket_contents(self.env)[1]

    def proc_status_kb(self, field_name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise KeyError(field_name)

    def rss_kb(self) -> int:
        return self.proc_status_kb("VmRSS")

    def hwm_kb(self) -> int:
        return self.proc_status_kb("VmHWM")

    def log_text(self) -> str:
        return self.process.log_text()

    def wait_ready(self, timeout: float = 30) -> None:
        self.process.wait_http(self.url + "/readyz", timeout=timeout)

    def stop(self) -> int | None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        return self.process.stop()


BOUNDARY = "rag-test-boundary-7f3a"


def multipart_body(
    parts: Sequence[tuple[str, str | bytes | None, bytes]], boundary: str = BOUNDARY, close: bool = True
) -> tuple[bytes, str]:
    """A raw multipart/form-data body (exact bytes, e.g. control characters in a file name).

    `parts` are (field name, file name or None for a plain field, data). Returns (body, Content-Type).
    """
    out = bytearray()
    for name, filename, data in parts:
        out += f"--{boundary}\r\n".encode()
        out += f'Content-Disposition: form-data; name="{name}"'.encode()
        if filename is not None:
            raw = filename.encode() if isinstance(filename, str) else filename
            out += b'; filename="' + raw + b'"'
        out += b"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def multipart() -> Callable[..., tuple[bytes, str]]:
    """`multipart([(field, filename, data), ...], close=True)` → (body, content type)."""
    return multipart_body


def start_api(env: dict[str, str], log_file: Path, *, wait_ready: bool = True) -> ApiProcess:
    """Start `rag-api` with `env` on a free port (API_PORT in `env` wins)."""
    port = int(env.get("API_PORT") or free_port())
    full_env = {
        "JWT_SECRET": JWT_SECRET,
        "API_HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "EMBEDDING_PROVIDER": "hash",
        **env,
        "API_PORT": str(port),
    }
    process = ServiceProcess([venv_command("rag-api")], full_env, log_file).start()
    api = ApiProcess(url=f"http://127.0.0.1:{port}", port=port, env=full_env, process=process)
    if wait_ready:
        try:
            api.wait_ready()
        except BaseException:
            api.stop()
            raise
    return api


ApiFactory = Callable[..., ApiProcess]


@pytest.fixture
def api_factory(database_url: str, s3_env: dict[str, str], tmp_path: Path) -> Iterator[ApiFactory]:
    """Start api processes for this test: `api_factory(wait_ready=True, **ENV_OVERRIDES)`."""
    started: list[ApiProcess] = []

    def factory(*, wait_ready: bool = True, **overrides: str) -> ApiProcess:
        env = {"DATABASE_URL": database_url, **s3_env, **{k: str(v) for k, v in overrides.items()}}
        log_file = tmp_path / f"api-{len(started)}.log"
        api = start_api(env, log_file, wait_ready=wait_ready)
        started.append(api)
        return api

    yield factory
    for api in started:
        api.stop()


@pytest.fixture
def api(api_factory: ApiFactory) -> ApiProcess:
    """One api process on this test's own database and bucket."""
    return api_factory()


SHARED_MAX_UPLOAD_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def shared_api(
    pg_admin_dsn: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """One api per module on a database and bucket of its own (MAX_UPLOAD_BYTES 1 MiB, JOB_MAX_ATTEMPTS 3).

    Tests sharing it must scope their checks to their own workspaces and users.
    """
    env = {
        **s3_env_for(s3_server, f"rag-shared-{uuid.uuid4().hex[:10]}"),
        "MAX_UPLOAD_BYTES": str(SHARED_MAX_UPLOAD_BYTES),
        "JOB_MAX_ATTEMPTS": "3",
    }
    ensure_bucket(env)
    with cloned_database(pg_admin_dsn, "rag_api_shared") as dsn:
        api = start_api({"DATABASE_URL": dsn, **env}, tmp_path_factory.mktemp("shared-api") / "api.log")
        try:
            yield api
        finally:
            api.stop()
