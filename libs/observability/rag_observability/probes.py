"""/healthz, /readyz and /metrics for the workers, on METRICS_PORT.

The workers have no web framework; a few lines of asyncio HTTP are enough for
Kubernetes probes and a Prometheus scrape, and keep the images small.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


class ProbeServer:
    """Serve the probes on `port` (0 picks a free port; callers skip it when METRICS_PORT=0)."""

    def __init__(
        self,
        port: int,
        ready: Callable[[], bool],
        registry: CollectorRegistry = REGISTRY,
        host: str = "0.0.0.0",
    ) -> None:
        self._port = port
        self._host = host
        self._ready = ready
        self._registry = registry
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else "/"
            if path == "/healthz":
                status, body, ctype = 200, b'{"status":"ok"}', "application/json"
            elif path == "/readyz":
                ok = self._ready()
                status = 200 if ok else 503
                body = b'{"status":"ready"}' if ok else b'{"status":"not_ready"}'
                ctype = "application/json"
            elif path == "/metrics":
                status, body, ctype = 200, generate_latest(self._registry), CONTENT_TYPE_LATEST
            else:
                status, body, ctype = (
                    404,
                    b'{"error":{"code":"not_found","message":"Not found."}}',
                    "application/json",
                )
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
