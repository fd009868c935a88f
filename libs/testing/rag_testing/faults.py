"""Fault injection for tests: a TCP proxy that can cut a service off, restore it, or slow it.

Put it between a process and Postgres or S3 to simulate an outage without losing
the server's state (moto keeps objects only in memory). With `latency` set, every answer
arrives that many seconds after its request: a parse worker whose S3 goes through such a
proxy holds each job that long, which is how tests catch a worker in the middle of one
(instead of a test-only delay in production code).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit

from rag_devstack.postgres import free_port


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target`. `cut()` drops and refuses connections.

    `latency` (seconds, may change at any time): how long each answer is held before the
    client sees its first byte; the request itself reaches the target at once.
    """

    def __init__(
        self, target_host: str, target_port: int, port: int | None = None, latency: float = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.latency = latency
        self._cut = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server: socket.socket | None = None

    @classmethod
    def to_url(cls, url: str, latency: float = 0) -> TcpProxy:
        """A started proxy to the host and port of an http(s) URL (e.g. S3_ENDPOINT_URL)."""
        target = urlsplit(url)
        default_port = 443 if target.scheme == "https" else 80
        return cls(target.hostname or "127.0.0.1", target.port or default_port, latency=latency).start()

    @property
    def url(self) -> str:
        """The proxy as an http URL, to give a process instead of the target's."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def _listen(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            asked = threading.Event()  # the client sent a request not answered yet
            threading.Thread(target=self._pipe, args=(client, upstream, asked, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, asked, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, asked: threading.Event, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if not answers:
                    asked.set()
                elif asked.is_set():
                    asked.clear()
                    if self.latency:
                        time.sleep(self.latency)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        if self._server is not None:
            # shutdown() first: close() alone leaves a thread blocked in accept() that
            # still takes one more connection.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        if self._server is None:
            self._listen()

    def stop(self) -> None:
        self.cut()
