"""The console page in a real browser against the whole running system.

Sign in through `/#token=...`, create a workspace, upload a .txt and a .md through the
file input, watch both rows reach `ingested` with no reload (the WebSocket drives the
table), see a refused file explained in words, open a document's jobs, search for a word
of one file and see the hit. Ask a question and watch the answer built from its streamed
deltas (the events carry no text so far) complete with citations; the console's delta rule
(offsets in code points, old deltas skipped) holds for astral characters. The screenshot
goes to .dev/console.png.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, FilePayload, Locator, Page, WebSocket, expect

from rag_testing.system import System

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / ".dev" / "console.png"

NOTES = b"Field notes\n\nThe quartermaster counted every xylophone in the harbour warehouse before dawn.\n"
GUIDE = b"# Guide\n\nCalibrate the telescope each evening; align the mirror with the pole star.\n"

pytestmark = pytest.mark.slow


def row(page: Page, filename: str) -> Locator:
    return page.locator(f'#documents tbody tr[data-filename="{filename}"]')


def test_console_upload_live_table_and_search(system: System, launch_browser: Callable[[], Browser]) -> None:
    """`system` (rag_devstack) runs the services; `launch_browser` is in tests/browser/conftest.py."""
    browser = launch_browser()
    user_id = uuid.uuid4()
    token = system.token(user_id)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    console_errors: list[str] = []

    # Uncaught exceptions and console.error; a refused request (the empty file's 400) is
    # logged by Chromium as "Failed to load resource" and is expected here.
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    ws_urls: list[str] = []
    frames: list[dict[str, object]] = []

    def on_websocket(ws: WebSocket) -> None:
        ws_urls.append(ws.url)
        ws.on("framereceived", lambda data: frames.append(json.loads(data)))

    page.on("websocket", on_websocket)
    try:
        drive(page, system, token, user_id, ws_urls)
        ask(page, system, token, frames)
    except BaseException:
        print(system.logs())
        raise
    finally:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert not console_errors, f"errors in the page: {console_errors}"


def drive(page: Page, system: System, token: str, user_id: uuid.UUID, ws_urls: list[str]) -> None:
    response = page.goto(f"{system.api.url}/#token={token}")
    assert response is not None and response.ok, f"GET / answered {response and response.status}"

    # Signed in from the fragment, which is then removed from the address bar.
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert "token" not in page.url
    expect(page.locator("#user")).to_contain_text(str(user_id))

    page.fill("#workspace-name", "browser test")
    page.click("#workspace-form button[type=submit]")
    expect(page.locator("#workspace-select option:checked")).to_have_text("browser test")
    expect(page.locator("#workspace-role")).to_contain_text("owner")

    # A marker that a reload would wipe: the table must change by itself.
    page.evaluate("window.__sameDocument = true")
    page.set_input_files(
        "#file-input",
        files=[
            FilePayload(name="notes.txt", mimeType="text/plain", buffer=NOTES),
            FilePayload(name="guide.md", mimeType="text/markdown", buffer=GUIDE),
        ],
    )
    expect(page.locator("#upload-status")).to_contain_text("Accepted 2 files")
    for filename in ("notes.txt", "guide.md"):
        expect(row(page, filename)).to_have_attribute("data-status", "ingested")
    expect(row(page, "notes.txt").locator(".job")).to_contain_text(
        re.compile(r"ingest success, attempt 1/\d+")
    )
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"

    # A refused file is explained in words.
    page.set_input_files(
        "#file-input", files=[FilePayload(name="empty.txt", mimeType="text/plain", buffer=b"")]
    )
    expect(page.locator("#upload-errors li")).to_contain_text("empty.txt")
    expect(page.locator("#upload-errors li")).to_contain_text("empty_file")

    # The jobs of one document: parse then ingest, both done.
    row(page, "notes.txt").locator("button", has_text="jobs").click()
    jobs = page.locator("#jobs tbody tr")
    expect(jobs).to_have_count(2)
    expect(jobs.nth(0)).to_contain_text("parse")
    expect(jobs.nth(1)).to_contain_text("ingest")
    expect(jobs.nth(1)).to_contain_text("success")

    page.fill("#search-input", "xylophone")
    page.click("#search-form button[type=submit]")
    first = page.locator("#search-results .hit").first
    expect(first.locator(".hit-filename")).to_have_text("notes.txt")
    expect(first.locator(".passage")).to_contain_text("xylophone")

    # Resume: while the page is disconnected a file is uploaded and ingested; on reconnect the
    # page asks for the events after its last id (no REST reload) and the row appears.
    page.evaluate("ragConsole.disconnect(); ragConsole.setConnection('offline', 'paused by the test')")
    workspace_id = page.locator("#workspace-select").input_value()
    with httpx.Client(
        base_url=system.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        uploaded = api.post(
            f"/api/workspaces/{workspace_id}/documents/upload",
            files=[("files", ("late.txt", b"Written while the console was away.\n", "text/plain"))],
        )
        assert uploaded.status_code == 201, uploaded.text
        document_id = uploaded.json()["documents"][0]["id"]
        deadline = time.monotonic() + 30
        while api.get(f"/api/documents/{document_id}").json()["status"] != "ingested":
            assert time.monotonic() < deadline, "late.txt was not ingested in 30 s"
            time.sleep(0.1)
    expect(row(page, "late.txt")).to_have_count(0)
    page.evaluate("ragConsole.connect()")
    expect(row(page, "late.txt")).to_have_attribute("data-status", "ingested")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert re.search(r"[?&]last_event_id=\d+", ws_urls[-1]), ws_urls


# Records the text the answer shows each time the page redraws it while it streams.
WATCH_STREAMING = """() => {
  window.__streamed = [];
  new MutationObserver(() => {
    const answer = [...document.querySelectorAll("#messages .message-assistant")].pop();
    if (answer && answer.dataset.status === "streaming")
      window.__streamed.push(answer.querySelector(".content").textContent);
  }).observe(document.querySelector("#messages"), { childList: true, subtree: true });
}"""

# The console's delta rule on a message of its own: offsets count code points (the fish is
# one, two UTF-16 units; the boat is two: U+26F5 and a variation selector).
DELTA_RULE = """() => {
  const { state, applyDelta } = window.ragConsole;
  state.messages.set("probe", { id: "probe", status: "streaming", content: "🐟", length: 1, citations: [] });
  applyDelta({ id: "probe", offset: 1, delta: "a⛵️" });
  applyDelta({ id: "probe", offset: 0, delta: "🐟a" });
  applyDelta({ id: "probe", offset: 2, delta: "⛵️b" });
  const probe = state.messages.get("probe");
  state.messages.delete("probe");
  return [probe.content, probe.length];
}"""


def ask(page: Page, system: System, token: str, frames: list[dict[str, object]]) -> None:
    assert page.evaluate(DELTA_RULE) == ["🐟a⛵️b", 5]
    page.evaluate(WATCH_STREAMING)
    page.fill("#ask-input", "What did the quartermaster count in the harbour warehouse?")
    page.click("#ask-form button[type=submit]")
    answer = page.locator("#messages .message-assistant").last
    expect(answer).to_have_attribute("data-status", "completed")
    message_id = answer.get_attribute("data-id")
    conversation_id = page.locator("#conversation-select").input_value()
    with httpx.Client(base_url=system.api.url, headers={"Authorization": f"Bearer {token}"}) as api:
        listed = api.get(f"/api/conversations/{conversation_id}/messages").json()["items"]
    content = next(m for m in listed if m["id"] == message_id)["content"]

    payloads = [f["payload"] for f in frames if f.get("type") == "message.status_updated"]
    deltas = [p for p in payloads if isinstance(p, dict) and p["message_id"] == message_id]
    streaming = [p for p in deltas if p["status"] == "streaming"]
    assert streaming and all("content" not in p for p in streaming), deltas
    streamed = "".join(str(p["delta"]) for p in streaming)
    assert streamed == content
    # While it streamed the page showed the deltas so far: each a beginning of the answer.
    shown: list[str] = page.evaluate("window.__streamed")
    assert shown and all(content.startswith(text) for text in shown), shown
    expect(answer.locator(".content")).to_have_text(content)

    answer.locator(".cite").first.click()
    expect(page.locator("#citation .passage")).to_be_visible()
