"""The system as real processes: api replicas and workers (tests, benchmarks). The one way
tests start a service.

`System` starts `rag-api`, `rag-parse-worker` and `rag-ingest-worker` against one
database and bucket, waits for each `/readyz`, and stops (or kills) them on demand.
`start_system` starts the usual set; a test that needs only some of them (an api without
workers, one parse worker without an api) builds a `System` on `system_env(...)` and calls
`add_api` / `add_worker`, each with its own environment overrides (e.g. another S3 endpoint).
Every api replica is a separate hypercorn process.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from rag_core.tokens import mint_token
from rag_devstack.postgres import free_port
from rag_devstack.procs import ServiceProcess, venv_command
from rag_devstack.s3 import bucket_contents

# 64 bytes or more: tests also sign with HS512 (a refused algorithm), whose key should be that long.
TEST_JWT_SECRET = "rag-system-test-secret-" + "0123456789abcdef" * 3


@dataclass
class Service:
    name: str
    process: ServiceProcess
    port: int  # API_PORT for the api, METRICS_PORT for a worker
    env: dict[str, str]  # what it was started with (the system's, plus its own overrides)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 120) -> None:
        self.process.wait_http(self.url + "/readyz", timeout=timeout)

    def log_text(self) -> str:
        return self.process.log_text()

    def proc_status_kb(self, field_name: str) -> int:
        """A size line of /proc/<pid>/status, e.g. VmRSS (resident) or VmHWM (its peak)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise KeyError(field_name)

    def rss_kb(self) -> int:
        return self.proc_status_kb("VmRSS")

    def hwm_kb(self) -> int:
        return self.proc_status_kb("VmHWM")


@dataclass
class System:
    env: dict[str, str]
    log_dir: Path
    services: list[Service] = field(default_factory=list)
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def apis(self) -> list[Service]:
        return [s for s in self.services if s.name.startswith("api")]

    @property
    def api(self) -> Service:
        return self.apis[0]

    def token(self, user_id: uuid.UUID, ttl_seconds: int = 3600) -> str:
        return mint_token(user_id, self.env["JWT_SECRET"], ttl_seconds)

    def client(self, user_id: uuid.UUID, api: Service | None = None) -> httpx.Client:
        return self.http_client(api or self.api, self.token(user_id))

    def http_client(self, service: Service, token: str | None = None, timeout: float = 60) -> httpx.Client:
        """A client of `service` sending `token` (none: anonymous), closed when the system stops."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        client = httpx.Client(base_url=service.url, headers=headers, timeout=timeout)
        self._clients.append(client)
        return client

    def _start(
        self, name: str, command: str, port_var: str, overrides: dict[str, str], wait: bool
    ) -> Service:
        port = free_port()
        env = {**self.env, **overrides, port_var: str(port)}
        process = ServiceProcess([venv_command(command)], env, self.log_dir / f"{name}.log").start()
        service = Service(name, process, port, env)
        self.services.append(service)
        if wait:
            service.wait_ready()
        return service

    def add_api(self, wait: bool = True, **overrides: str) -> Service:
        return self._start(f"api{len(self.apis)}", "rag-api", "API_PORT", overrides, wait)

    def add_worker(self, kind: str, wait: bool = True, **overrides: str) -> Service:
        """`kind` is "parse" or "ingest"."""
        count = sum(s.name.startswith(kind) for s in self.services)
        return self._start(f"{kind}{count}", f"rag-{kind}-worker", "METRICS_PORT", overrides, wait)

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the system's database (autocommit); its rows, if any."""
        return run_sql(self.env["DATABASE_URL"], query, params)

    def bucket_contents(self, prefix: str = "") -> tuple[list[str], list[str]]:
        """(object keys, unfinished multipart uploads) of the system's bucket under `prefix`."""
        return bucket_contents(self.env, prefix)

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.process.log_text()[-4000:]}" for s in self.services)

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        for service in self.services:
            service.process.stop()


def run_sql(dsn: str, query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (autocommit); its rows, if any."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def system_env(database_url: str, s3_env: dict[str, str], **overrides: str) -> dict[str, str]:
    """The environment every service of a test or bench system gets."""
    return {
        "DATABASE_URL": database_url,
        **s3_env,
        "JWT_SECRET": TEST_JWT_SECRET,
        "API_HOST": "127.0.0.1",
        "EMBEDDING_PROVIDER": "hash",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "WORKER_IDLE_SLEEP_SECONDS": "5",
        "JOB_RETRY_BASE_SECONDS": "0.2",
        **overrides,
    }


def start_system(
    database_url: str,
    s3_env: dict[str, str],
    log_dir: Path,
    *,
    apis: int = 1,
    workers: bool = True,
    **overrides: str,
) -> System:
    """api replicas (plus one parse and one ingest worker unless `workers=False`), all ready."""
    system = System(system_env(database_url, s3_env, **overrides), log_dir)
    try:
        for _ in range(apis):
            system.add_api(wait=False)
        if workers:
            system.add_worker("parse", wait=False)
            system.add_worker("ingest", wait=False)
        for service in system.services:
            service.wait_ready()
    except BaseException:
        system.stop()
        raise
    return system
