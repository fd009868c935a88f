"""A thread that GETs a process's /healthz every 100 ms from outside it, keeping every latency.

What a test checks to prove that a process's event loop stayed responsive while it did
CPU-bound work: no failed probe and no slow one. `observe()` runs after each probe, for
a test that also samples something else at the same rhythm (a job row's lease).
"""

from __future__ import annotations

import threading
import time

import httpx


class HealthPoller(threading.Thread):
    def __init__(self, url: str, *, interval: float = 0.1, timeout: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def observe(self) -> None:
        """Called in this thread after every probe; nothing by default."""

    def run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(self.url).status_code
                    if status != 200:
                        self.failures.append(f"HTTP {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.latencies.append(time.monotonic() - started)
                self.observe()
                self.stop.wait(self.interval)
