"""A local Redis server for tests and `make dev`: the distribution's `redis-server` (or
`valkey-server`) on a free loopback port, nothing persisted.

Not an imitation of Redis: the real server, found on the PATH (`make os-packages` installs
Debian's `redis-server`), started as a child process. `restart` keeps the port, so clients
reconnect to the same URL, as they would to a managed Redis after a failover.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from rag_devstack.postgres import free_port

# Looked up in this order: Redis, then its fork Valkey (the same protocol and commands).
SERVER_BINARIES = ("redis-server", "valkey-server")


def find_server_binary() -> str | None:
    """The path of a Redis-compatible server on the PATH, or None."""
    for name in SERVER_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class RedisServer:
    """One redis-server process on 127.0.0.1:`port`, its files under `directory`."""

    def __init__(self, directory: Path, port: int | None = None, binary: str | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.binary = binary or find_server_binary()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15) -> str:
        if self.binary is None:
            raise RuntimeError(
                "no redis-server or valkey-server on the PATH: run `make os-packages` "
                "(Debian's redis-server), or set TEST_REDIS_URL / REDIS_URL"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                # A throwaway server: no snapshot, no append-only file, no protected mode fuss.
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.binary} exited with {self._proc.returncode}: {tail}")
            if _answers_ping(self.port):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop the server at once (SIGKILL: a crash, and what a test of an outage wants)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, wait `down_seconds`, start again on the same port (every subscription drops)."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
