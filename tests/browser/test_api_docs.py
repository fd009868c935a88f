"""The interactive API page `/docs` in Chromium: rendered, and fed by the api alone.

Swagger UI's assets come from the api (the swagger-ui-bundle-v2 wheel, rag_api.api_docs) and
its document from `/openapi.json`: every request the page makes, of any kind, is recorded
with Playwright's request events and must go to the api's own origin; nothing may leave the
machine (no CDN, no online validator). The page must show the operations, and trying one
("Try it out" of GET /healthz) must reach the api. The screenshot goes under the test's tmp path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Request, expect

from rag_api.api_docs import openapi_document
from rag_testing.system import System

SCREENSHOT_NAME = "api-docs.png"


def operation_count() -> int:
    return sum(
        1 for item in openapi_document()["paths"].values() for method in item if method != "parameters"
    )


def test_docs_page_renders_every_operation_from_the_api_alone(
    system_factory: Callable[..., System], launch_browser: Callable[[], Browser], tmp_path: Path
) -> None:
    api = system_factory(workers=False).api
    origin = urlsplit(api.url)
    browser = launch_browser()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    requested: list[str] = []

    def on_request(request: Request) -> None:
        requested.append(request.url)

    page.on("request", on_request)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(f"{api.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("rag-engine API")
    operations = page.locator(".swagger-ui .opblock")
    expect(operations).to_have_count(operation_count(), timeout=30_000)
    expect(
        page.locator(".opblock-summary-path", has_text="/api/workspaces/{workspace_id}/documents/upload")
    ).to_be_visible()
    expect(page.locator(".swagger-ui .auth-wrapper .authorize")).to_be_visible()  # bearer auth is described

    # Try one operation from the page: the request goes to the api and its answer is shown.
    healthz = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/healthz"))
    healthz.locator(".opblock-summary").click()
    healthz.locator("button.try-out__btn").click()
    healthz.locator("button.execute").click()
    status = healthz.locator(".live-responses-table tr.response td.response-col_status").first
    expect(status).to_contain_text("200", timeout=30_000)

    page.screenshot(path=str(tmp_path / SCREENSHOT_NAME), full_page=True)
    assert (tmp_path / SCREENSHOT_NAME).stat().st_size > 10_000
    assert errors == []
    assert f"{api.url}/openapi.json" in requested
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested)
    assert f"{api.url}/healthz" in requested
    foreign = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob")
        and (urlsplit(url).hostname, urlsplit(url).port) != (origin.hostname, origin.port)
    ]
    assert foreign == [], f"requests that left the api: {foreign}"
