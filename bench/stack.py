"""Real rag-api processes (and, for the pipeline, workers) on a bench database and a moto S3."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from rag_devstack.s3 import DEV_ACCESS_KEY, DEV_SECRET_KEY, MotoServer
from rag_devstack.system import TEST_JWT_SECRET, System


@contextlib.contextmanager
def s3(log_dir: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server with one bucket; yields the S3_* variables."""
    server = MotoServer(log_file=log_dir / "moto.log")
    server.start()
    try:
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=DEV_ACCESS_KEY,
            aws_secret_access_key=DEV_SECRET_KEY,
        ).create_bucket(Bucket=bucket)
        yield {
            "S3_ENDPOINT_URL": server.endpoint_url,
            "S3_BUCKET": bucket,
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": DEV_ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": DEV_SECRET_KEY,
        }
    finally:
        server.stop()


def api_env(database_url: str, s3_env: dict[str, str], **overrides: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        **s3_env,
        "JWT_SECRET": TEST_JWT_SECRET,
        "API_HOST": "127.0.0.1",
        "EMBEDDING_PROVIDER": "hash",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        **overrides,
    }


@contextlib.contextmanager
def apis(database_url: str, s3_env: dict[str, str], log_dir: Path, count: int = 1) -> Iterator[System]:
    """`count` rag-api processes, each ready (/readyz 200)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    system = System(api_env(database_url, s3_env), log_dir)
    try:
        for _ in range(count):
            system.add_api(wait=False)
        for service in system.services:
            service.process.wait_http(service.url + "/readyz", timeout=120)
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
