"""A local S3-compatible server (moto server) for tests and `make dev`.

moto keeps everything in memory: stopping it loses the objects. To simulate an
outage without losing state, put a `TcpProxy` (rag_testing.faults) in front.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rag_devstack.postgres import free_port

DEV_ACCESS_KEY = "rag-dev"
DEV_SECRET_KEY = "rag-dev-secret"


class MotoServer:
    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> str:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        self._proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self.endpoint_url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto_server did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


def s3_env(endpoint_url: str, bucket: str) -> dict[str, str]:
    """S3_* settings for `bucket` on a local server with the dev credentials."""
    return {
        "S3_ENDPOINT_URL": endpoint_url,
        "S3_BUCKET": bucket,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": DEV_ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": DEV_SECRET_KEY,
    }


def s3_client(env: Mapping[str, str]) -> Any:
    """A plain boto3 client for the bucket S3_* describe (dev and tests: sync is simplest)."""
    import boto3  # moto[server] depends on it

    return boto3.client(
        "s3",
        endpoint_url=env.get("S3_ENDPOINT_URL"),
        region_name=env.get("S3_REGION", "us-east-1"),
        aws_access_key_id=env.get("S3_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("S3_SECRET_ACCESS_KEY"),
    )


def bucket_contents(env: Mapping[str, str], prefix: str = "") -> tuple[list[str], list[str]]:
    """(object keys, keys of unfinished multipart uploads) under `prefix`, each sorted:
    what a test checks to prove that a refused or failed request left nothing behind."""
    client, bucket = s3_client(env), env["S3_BUCKET"]
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return keys, sorted(u["Key"] for u in uploads)


def ensure_bucket(env: Mapping[str, str]) -> None:
    """Create the bucket S3_* describe unless it exists (dev and tests only)."""
    client = s3_client(env)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        try:
            client.head_bucket(Bucket=env["S3_BUCKET"])
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=env["S3_BUCKET"])
