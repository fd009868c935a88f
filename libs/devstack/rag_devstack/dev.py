"""`make dev`: the whole system on this machine, in one command, until Ctrl-C.

Backing services come from the environment, Docker (testcontainers) or embedded
processes (see backends.py). Then: migrate, start rag-api and both workers as
children with prefixed, coloured logs, wait until all are ready, write
`.dev/stack.env`, print the URL and a dev token. Ctrl-C or SIGTERM stops every
child and every backing service this run started. A run is ephemeral: the
embedded database lives in a temporary directory removed at exit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from rag_devstack.backends import POSTGRES_IMAGE, BackendChoice, choose_backends
from rag_devstack.postgres import EmbeddedPostgres, free_port
from rag_devstack.procs import venv_command
from rag_devstack.redis import RedisServer
from rag_devstack.s3 import DEV_ACCESS_KEY, DEV_SECRET_KEY, MotoServer, ensure_bucket

COLOURS = {"api": "\033[36m", "parse": "\033[33m", "ingest": "\033[35m", "dev": "\033[32m"}
RESET = "\033[0m"
READY_TIMEOUT = 180.0  # the first minilm load and a cold embedded Postgres take a while


class DevError(Exception):
    """A problem the user can fix; printed as one line."""


def say(message: str, source: str = "dev") -> None:
    colour = COLOURS.get(source, "") if sys.stdout.isatty() else ""
    reset = RESET if colour else ""
    print(f"{colour}[{source:>6}]{reset} {message}", flush=True)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Stack:
    """Everything this run started, stopped in reverse order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dev_dir = root / ".dev"
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._cleanups: list[Callable[[], None]] = []

    def on_exit(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is None:
                say(f"stopping {name}")
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:
                say(f"cleanup failed: {exc}")

    # -- backing services ------------------------------------------------------

    def start_backends(self, choice: BackendChoice, env: dict[str, str]) -> None:
        if choice.postgres == "env":
            pass
        elif choice.postgres == "testcontainers":
            env["DATABASE_URL"] = self._postgres_container()
        else:
            tmp = Path(tempfile.mkdtemp(prefix="rag-dev-pg-"))
            server = EmbeddedPostgres(tmp / "data")
            say(f"starting embedded Postgres on port {server.port}")
            env["DATABASE_URL"] = server.start()
            self.on_exit(lambda: shutil.rmtree(tmp, ignore_errors=True))
            self.on_exit(server.destroy)
        if choice.s3 == "env":
            env.setdefault("S3_BUCKET", "rag-dev")
        elif choice.s3 == "testcontainers":
            env.update(self._minio_container())
        else:
            moto = MotoServer(log_file=self.dev_dir / "moto.log")
            say(f"starting local S3 (moto) on port {moto.port}")
            moto.start()
            self.on_exit(moto.stop)
            env.update(
                S3_ENDPOINT_URL=moto.endpoint_url,
                S3_BUCKET="rag-dev",
                S3_REGION="us-east-1",
                S3_ACCESS_KEY_ID=DEV_ACCESS_KEY,
                S3_SECRET_ACCESS_KEY=DEV_SECRET_KEY,
            )

    def _postgres_container(self) -> str:
        from testcontainers.postgres import PostgresContainer

        say(f"starting {POSTGRES_IMAGE} with testcontainers")
        container = PostgresContainer(POSTGRES_IMAGE, driver=None)
        container.start()
        self.on_exit(container.stop)
        return str(container.get_connection_url())

    def _minio_container(self) -> dict[str, str]:
        from testcontainers.minio import MinioContainer

        say("starting MinIO with testcontainers")
        container = MinioContainer()
        container.start()
        self.on_exit(container.stop)
        config = container.get_config()
        return {
            "S3_ENDPOINT_URL": f"http://{config['endpoint']}",
            "S3_BUCKET": "rag-dev",
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": config["access_key"],
            "S3_SECRET_ACCESS_KEY": config["secret_key"],
        }

    def start_redis_if_wanted(self, env: dict[str, str]) -> None:
        """`make dev EVENTBUS_BROKER=redis`: a local redis-server unless REDIS_URL names one."""
        if env.get("EVENTBUS_BROKER") != "redis" or env.get("REDIS_URL"):
            return
        tmp = Path(tempfile.mkdtemp(prefix="rag-dev-redis-"))
        server = RedisServer(tmp)
        if server.binary is None:
            raise DevError(
                "EVENTBUS_BROKER=redis: no redis-server on the PATH (make os-packages) and no REDIS_URL"
            )
        say(f"starting local Redis on port {server.port}")
        env["REDIS_URL"] = server.start()
        self.on_exit(lambda: shutil.rmtree(tmp, ignore_errors=True))
        self.on_exit(server.stop)

    # -- services --------------------------------------------------------------

    def spawn(self, name: str, command: str, env: dict[str, str]) -> None:
        proc = subprocess.Popen(
            [venv_command(command)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.root
        )
        self.children[name] = proc
        threading.Thread(target=_pump, args=(name, proc), daemon=True).start()

    def wait_ready(self, name: str, url: str, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.children[name].poll() is not None:
                raise DevError(
                    f"{name} exited with code {self.children[name].returncode} (see its log above)"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise DevError(f"{name} was not ready at {url} within {timeout:.0f}s")


def _pump(name: str, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        say(raw.decode(errors="replace").rstrip(), name)


def write_stack_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    tmp.replace(path)  # readers never see a half-written file


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(root: Path) -> int:
    env = dict(os.environ)
    host = env.setdefault("API_HOST", "127.0.0.1")
    port = int(env.setdefault("API_PORT", "8000"))
    if not port_is_free(host, port):
        raise DevError(
            f"port {port} on {host} is busy; stop what uses it or run: make dev API_PORT=<free port>"
        )
    choice = choose_backends(env)
    say(f"backing services: {choice.describe()}")
    stack = Stack(root)
    (root / ".dev").mkdir(exist_ok=True)
    (root / ".dev" / "stack.env").unlink(missing_ok=True)
    with stop_signals() as stop:
        try:
            stack.start_backends(choice, env)
            stack.start_redis_if_wanted(env)
            ensure_bucket(env)
            user_id = env.get("DEV_USER_ID") or str(uuid.uuid4())
            env.setdefault("JWT_SECRET", secrets.token_urlsafe(32))
            env.setdefault("EMBEDDING_PROVIDER", "minilm")
            env.setdefault("LOG_FORMAT", "console")
            ports = {"parse": free_port(), "ingest": free_port()}
            migrate = subprocess.run([venv_command("rag-migrate")], env=env, capture_output=True, text=True)
            if migrate.returncode != 0:
                raise DevError(f"rag-migrate failed: {migrate.stderr.strip()}")
            say(migrate.stdout.strip())
            stack.spawn("api", "rag-api", env)
            stack.spawn("parse", "rag-parse-worker", {**env, "METRICS_PORT": str(ports["parse"])})
            stack.spawn("ingest", "rag-ingest-worker", {**env, "METRICS_PORT": str(ports["ingest"])})
            api_url = f"http://{host}:{port}"
            stack.wait_ready("api", f"{api_url}/readyz")
            stack.wait_ready("parse", f"http://127.0.0.1:{ports['parse']}/readyz")
            stack.wait_ready("ingest", f"http://127.0.0.1:{ports['ingest']}/readyz")
            token = subprocess.run(
                [venv_command("rag-token"), "--user-id", user_id, "--ttl-seconds", "86400"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            write_stack_env(
                root / ".dev" / "stack.env",
                {
                    "API_URL": api_url,
                    "WS_URL": f"ws://{host}:{port}/api/ws",
                    "DEV_TOKEN": token,
                    "DEV_USER_ID": user_id,
                    "DATABASE_URL": env["DATABASE_URL"],
                    "S3_ENDPOINT_URL": env.get("S3_ENDPOINT_URL", ""),
                    "S3_BUCKET": env["S3_BUCKET"],
                    "EVENTBUS_BROKER": env.get("EVENTBUS_BROKER", "postgres"),
                    "REDIS_URL": env.get("REDIS_URL", ""),
                },
            )
            say(f"ready: open {api_url}/#token={token}")
            say(f"dev user {user_id}; token and URLs in .dev/stack.env (ephemeral: all data goes at exit)")
            say("Ctrl-C to stop")
            while not stop.wait(0.5):
                for name, proc in stack.children.items():
                    if proc.poll() is not None:
                        raise DevError(f"{name} exited with code {proc.returncode}; stopping everything")
            say("stopping")
            return 0
        finally:
            (root / ".dev" / "stack.env").unlink(missing_ok=True)
            stack.close()


def main() -> None:
    root = Path.cwd()
    try:
        code = run(root)
    except DevError as exc:
        say(f"error: {exc}")
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
