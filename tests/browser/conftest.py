"""The whole system as real processes, and a headless Debian Chromium driven by Playwright.

The services come from rag_testing's `system` fixture (api + both workers on this test's
own database and bucket). `launch_browser()` starts /usr/bin/chromium
(Debian's package; Playwright never downloads a browser here). A missing Chromium FAILS
the test with the command that installs it: `make test` installs it first
(tools/ensure-debian-packages.sh), so a skip would only hide a broken setup.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

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


def require_chromium() -> Path:
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's Chromium. Install it with "
            "`apt-get update && apt-get install -y --no-install-recommends chromium` (`make test` does, through tools/ensure-debian-packages.sh).",
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
