"""The whole system as real processes, and a headless Debian Chromium driven by Playwright.

`stack` starts `rag-api`, `rag-parse-worker` and `rag-ingest-worker` on this test's own
database and bucket (the `database_url` / `s3_env` fixtures of rag_devstack), waits until
each answers /readyz, and stops them after the test. `launch_browser()` starts /usr/bin/chromium
(Debian's package; Playwright never downloads a browser here). A missing Chromium FAILS
the test with the command that installs it: CI installs it (.ci/run), so a skip would
only hide a broken setup.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from rag_api.auth import mint_token
from rag_devstack.postgres import free_port
from rag_devstack.procs import ServiceProcess, venv_command

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root, on a closed network: without the background-networking flags Chromium
# keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JWT_SECRET = "browser-test-jwt-secret-" + "0123456789abcdef" * 2


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    processes: list[ServiceProcess] = field(default_factory=list)

    def token(self, user_id: uuid.UUID) -> str:
        return mint_token(user_id, self.env["JWT_SECRET"], 3600)

    def logs(self) -> str:
        return "\n".join(f"--- {p.argv[0]}\n{p.log_text()[-3000:]}" for p in self.processes)


@pytest.fixture
def stack(database_url: str, s3_env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    api_port = free_port()
    env = {
        "DATABASE_URL": database_url,
        **s3_env,
        "JWT_SECRET": JWT_SECRET,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "EMBEDDING_PROVIDER": "hash",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    result = Stack(url=f"http://127.0.0.1:{api_port}", env=env)
    services = [("rag-api", None), ("rag-parse-worker", free_port()), ("rag-ingest-worker", free_port())]
    try:
        for name, metrics_port in services:
            proc_env = dict(env) if metrics_port is None else {**env, "METRICS_PORT": str(metrics_port)}
            proc = ServiceProcess([venv_command(name)], proc_env, tmp_path / f"{name}.log").start()
            result.processes.append(proc)
        for (_, metrics_port), proc in zip(services, result.processes, strict=True):
            base = result.url if metrics_port is None else f"http://127.0.0.1:{metrics_port}"
            proc.wait_http(base + "/readyz", timeout=60)
        yield result
    finally:
        for proc in result.processes:
            proc.stop()


def require_chromium() -> Path:
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's Chromium. Install it with "
            "`apt-get update && apt-get install -y --no-install-recommends chromium` (.ci/run does).",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
def launch_browser() -> Iterator[Callable[[], Browser]]:
    """`launch_browser()` in the test: headless Debian Chromium with a fresh profile.

    Called from the test body (not a fixture's setup) so that a missing Chromium is
    reported as a FAILED test, with the command that installs it.
    """
    with sync_playwright() as pw:
        launched: list[Browser] = []

        def launch() -> Browser:
            path = require_chromium()
            browser = pw.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS, headless=True)
            launched.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in launched:
                browser.close()
