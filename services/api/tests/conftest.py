"""Real `rag-api` processes (hypercorn) against the test Postgres and a moto S3.

The processes are those of a `rag_testing.system.System` with no workers: `api_factory(**env)`
adds one api replica per call (keyword arguments override or add environment variables,
e.g. `api_factory(MAX_UPLOAD_BYTES="1000")`), waits for /readyz (unless `wait_ready=False`)
and the system stops every replica after the test. Two calls give two replicas on the same
database and bucket.

The returned `Api` is one replica seen as the api tests read it: `url`, `ws_url`, `token(user)`,
`user()` (an `ApiUser` with an authenticated httpx client), `sql(...)` on its database,
`s3_keys()` of its bucket, its process (`pid`, `rss_kb()`, `log_text()`).

`shared_api` is one api per test module on its own database and bucket, for the many
tests that only need fresh users and workspaces (it saves a process start per test).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from rag_core.tokens import mint_token
from rag_devstack.procs import ServiceProcess
from rag_devstack.s3 import bucket_contents, s3_client
from rag_testing.pytest_plugin import module_system
from rag_testing.system import Service, System, run_sql, system_env

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
class Api:
    """One api replica of `system`; database and bucket are those of its own environment
    (a replica started with DATABASE_URL through a proxy reads through it too)."""

    system: System
    service: Service

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def ws_url(self) -> str:
        return self.service.ws_url

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def pid(self) -> int:
        return self.service.pid

    @property
    def process(self) -> ServiceProcess:
        return self.service.process

    @property
    def env(self) -> dict[str, str]:
        return self.service.env

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def bucket(self) -> str:
        return self.env["S3_BUCKET"]

    def token(self, user_id: UUID, ttl_seconds: int = 3600) -> str:
        return mint_token(user_id, self.env["JWT_SECRET"], ttl_seconds)

    def client(self, token: str | None = None, timeout: float = 60) -> httpx.Client:
        return self.system.http_client(self.service, token, timeout)

    def user(self, user_id: UUID | None = None) -> ApiUser:
        user_id = user_id or uuid.uuid4()
        return ApiUser(user_id, self.client(self.token(user_id)))

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        return run_sql(self.database_url, query, params)

    def s3(self) -> Any:
        return s3_client(self.env)

    def s3_keys(self, prefix: str = "") -> list[str]:
        return bucket_contents(self.env, prefix)[0]

    def s3_uploads_in_progress(self) -> list[str]:
        return bucket_contents(self.env)[1]

    def rss_kb(self) -> int:
        return self.service.rss_kb()

    def hwm_kb(self) -> int:
        return self.service.hwm_kb()

    def log_text(self) -> str:
        return self.service.log_text()

    def wait_ready(self, timeout: float = 30) -> None:
        self.service.wait_ready(timeout)

    def stop(self) -> int | None:
        return self.service.process.stop()


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


ApiFactory = Callable[..., Api]


@pytest.fixture
def api_factory(database_url: str, s3_env: dict[str, str], tmp_path: Path) -> Iterator[ApiFactory]:
    """Start api replicas for this test: `api_factory(wait_ready=True, **ENV_OVERRIDES)`."""
    system = System(system_env(database_url, s3_env), tmp_path)

    def factory(*, wait_ready: bool = True, **overrides: str) -> Api:
        service = system.add_api(wait=wait_ready, **{k: str(v) for k, v in overrides.items()})
        return Api(system, service)

    try:
        yield factory
    finally:
        system.stop()


@pytest.fixture(params=["postgres", "redis", "redis-cluster"])
def broker_api_factory(request: pytest.FixtureRequest, api_factory: ApiFactory) -> ApiFactory:
    """`api_factory` on each realtime broker in turn (EVENTBUS_BROKER): the end-to-end realtime
    suite runs on both, the Redis one on a standalone server and on a Redis Cluster of three
    primaries (the session's real ones), with channels of this test's own."""
    if request.param == "postgres":
        return api_factory
    if request.param == "redis-cluster":
        redis_url: str = request.getfixturevalue("redis_cluster").url
    else:
        redis_url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex[:8]}:"

    def factory(*, wait_ready: bool = True, **overrides: str) -> Api:
        env = {"EVENTBUS_BROKER": "redis", "REDIS_URL": redis_url, "EVENTBUS_REDIS_PREFIX": prefix}
        return api_factory(wait_ready=wait_ready, **{**env, **overrides})

    return factory


@pytest.fixture
def api(api_factory: ApiFactory) -> Api:
    """One api replica on this test's own database and bucket."""
    return api_factory()


SHARED_MAX_UPLOAD_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def shared_api(pg_admin_dsn: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One api per module on a database and bucket of its own (MAX_UPLOAD_BYTES 1 MiB, JOB_MAX_ATTEMPTS 3).

    Tests sharing it must scope their checks to their own workspaces and users.
    """
    options = {"MAX_UPLOAD_BYTES": str(SHARED_MAX_UPLOAD_BYTES), "JOB_MAX_ATTEMPTS": "3"}
    log_dir = tmp_path_factory.mktemp("shared-api")
    with module_system(pg_admin_dsn, s3_server, log_dir, "api-shared", workers=False, **options) as system:
        yield Api(system, system.api)
