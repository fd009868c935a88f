"""Real rag-api processes (and, for the pipeline, workers) on a bench database and a moto S3."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from rag_devstack.s3 import MotoServer, ensure_bucket, s3_env
from rag_testing.system import System, start_system


@contextlib.contextmanager
def s3(log_dir: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server with one bucket; yields the S3_* variables."""
    server = MotoServer(log_file=log_dir / "moto.log")
    server.start()
    try:
        env = s3_env(server.endpoint_url, f"bench-{uuid.uuid4().hex[:8]}")
        ensure_bucket(env)
        yield env
    finally:
        server.stop()


@contextlib.contextmanager
def apis(
    database_url: str, s3_env: dict[str, str], log_dir: Path, count: int = 1, **overrides: str
) -> Iterator[System]:
    """`count` rag-api processes, each ready (/readyz 200); `overrides`: their env (settings)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    system = start_system(database_url, s3_env, log_dir, apis=count, workers=False, **overrides)
    try:
        yield system
    finally:
        system.stop()


def make_users(dsn: str, n: int, *, workspaces: bool = True) -> list[dict[str, Any]]:
    """`n` users, each the only member of a workspace of their own: [{"user", "workspace"}]."""
    users = [{"user": str(uuid.uuid4()), "workspace": str(uuid.uuid4())} for _ in range(n)]
    if workspaces:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO workspaces (id, name, created_by) VALUES (%s, 'bench', %s)",
                [(u["workspace"], u["user"]) for u in users],
            )
            cur.executemany(
                "INSERT INTO workspace_members VALUES (%s, %s, 'owner')",
                [(u["workspace"], u["user"]) for u in users],
            )
    return users
