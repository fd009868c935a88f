"""The realtime stream in Chromium: the console on the official client (clients/js), Chromium's
own EventSource on /api/events/stream, and the client library forced onto SSE.

- The console survives an api restart with no reload: the api process is stopped (SIGTERM)
  and started again on the same port; a document uploaded through a second api while the
  first was down appears in the table once the badge is live again.
- A page that uses the native `EventSource` directly (token in the query) through a
  `TcpProxy` whose connections are dropped twice during a paced burst of 100 events: EventSource
  reconnects by itself with the `Last-Event-ID` header, and the page ends with every id of
  the burst exactly once, in order.
- The client module the api serves (/rag-client.js), in Chromium with `transport: "sse"`,
  receives live events over fetch streaming, with the token in the Authorization header.

No workers run: each one-file upload publishes exactly `document.created` and
`job.status_updated` (parse queued) to every member.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Request, expect

from rag_testing.faults import TcpProxy
from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import System

pytestmark = pytest.mark.slow

TIMEOUT_MS = 60_000  # a loaded 2-core machine: the reconnect backoff alone can take 15 s
# What Chromium logs by itself while the api is away; anything else in the console is a bug.
NETWORK_NOISE = ("Failed to load resource", "WebSocket connection to")


@contextmanager
def watched_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page whose uncaught errors and console errors (network noise aside) are collected."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(NETWORK_NOISE):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page, errors


def upload(api: httpx.Client, workspace_id: str, name: str) -> str:
    response = api.post(
        f"/api/workspaces/{workspace_id}/documents/upload",
        files=[("files", (name, f"{name}: {uuid.uuid4()}\n".encode(), "text/plain"))],
    )
    assert response.status_code == 201, response.text
    document_id: str = response.json()["documents"][0]["id"]
    return document_id


def row(page: Page, filename: str) -> Locator:
    return page.locator(f'#documents tbody tr[data-filename="{filename}"]')


def test_console_resumes_after_the_api_restarts(
    system_factory: SystemFactory, launch_browser: Callable[[], Browser]
) -> None:
    system: System = system_factory(workers=False, apis=2)
    served, other = system.apis
    user = uuid.uuid4()
    token = system.token(user)
    rest = system.http_client(other, token)
    created = rest.post("/api/workspaces", json={"name": "restart"})
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]
    with watched_page(launch_browser()) as (page, errors):
        connections: list[str] = []
        page.on("websocket", lambda ws: connections.append(ws.url))
        page.on("request", lambda r: connections.append(r.url) if "/api/events/stream" in r.url else None)
        try:
            page.goto(f"{served.url}/#token={token}")
            badge = page.locator("#connection")
            expect(badge).to_have_attribute("data-state", "live")
            expect(page.locator("#workspace-select option:checked")).to_have_text("restart")
            page.evaluate("window.__sameDocument = true")
            upload(rest, workspace_id, "before.txt")
            expect(row(page, "before.txt")).to_have_attribute("data-status", "queued")

            served.process.stop()
            expect(badge).not_to_have_attribute("data-state", "live")
            upload(rest, workspace_id, "during.txt")  # committed while the page's api is down
            served.process.start()  # same argv and environment: the same port
            served.wait_ready()

            expect(badge).to_have_attribute("data-state", "live")
            expect(row(page, "during.txt")).to_have_attribute("data-status", "queued")
            upload(rest, workspace_id, "after.txt")
            expect(row(page, "after.txt")).to_have_attribute("data-status", "queued")
            expect(page.locator("#documents tbody tr")).to_have_count(3)
            assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
            # It resumed (the events after its position were replayed), it did not start over.
            assert "last_event_id=" in connections[-1], connections
        except BaseException:
            print(system.logs())
            raise
    assert not errors, f"errors in the page: {errors}"


# Opens Chromium's own EventSource on the stream and records (lastEventId, frame id) of every
# event and each hello (one per connection).
OPEN_EVENTSOURCE = """(token) => {
  window.__ids = [];
  window.__hellos = 0;
  const source = new EventSource(`/api/events/stream?token=${encodeURIComponent(token)}`);
  source.addEventListener("hello", () => { window.__hellos += 1; });
  for (const type of ["document.created", "job.status_updated"]) {
    source.addEventListener(type, (e) => window.__ids.push([Number(e.lastEventId), JSON.parse(e.data).id]));
  }
  window.__source = source;
}"""


def test_native_eventsource_resumes_with_last_event_id_after_cuts(
    system_factory: SystemFactory, launch_browser: Callable[[], Browser]
) -> None:
    system: System = system_factory(workers=False)
    proxy = TcpProxy("127.0.0.1", system.api.port).start()
    user = uuid.uuid4()
    token = system.token(user)
    rest = system.http_client(system.api, token)
    workspace_id = rest.post("/api/workspaces", json={"name": "burst"}).json()["id"]  # event 1
    uploads = 50  # 100 events: ids 2..101
    pace = 0.15  # seconds between uploads: the burst outlasts EventSource's reconnect delay (1-4 s)
    with watched_page(launch_browser()) as (page, errors):
        streams: list[Request] = []
        page.on("request", lambda r: streams.append(r) if "/api/events/stream" in r.url else None)
        try:
            page.goto(f"{proxy.url}/healthz")  # any page of the proxy's origin
            page.evaluate(OPEN_EVENTSOURCE, token)
            page.wait_for_function("window.__hellos === 1")

            failures: list[BaseException] = []

            def burst() -> None:
                try:
                    with httpx.Client(
                        base_url=system.api.url, headers={"Authorization": f"Bearer {token}"}
                    ) as api:
                        for i in range(uploads):
                            upload(api, workspace_id, f"burst-{i}.txt")
                            time.sleep(pace)
                except BaseException as exc:  # reported by the test thread
                    failures.append(exc)

            sender = threading.Thread(target=burst)
            sender.start()
            mid_burst: list[bool] = []
            for received in (10, 40):  # two cuts, each in the middle of the burst
                page.wait_for_function(f"window.__ids.length >= {received}")
                mid_burst.append(sender.is_alive())
                proxy.cut()
                proxy.restore()
            sender.join(120)
            assert mid_burst == [True, True], "the burst was over before a cut"
            assert not failures, failures
            page.wait_for_function(f"window.__ids.length >= {2 * uploads}")
            time.sleep(1)  # anything sent twice would arrive now
            ids = page.evaluate("window.__ids")
            assert ids == [[n, n] for n in range(2, 2 + 2 * uploads)], ids
            assert page.evaluate("window.__hellos") >= 2, "EventSource never reconnected"
            resumed = [r.all_headers().get("last-event-id") for r in streams[1:]]
            assert streams and all(h and h.isdigit() for h in resumed), resumed
            assert resumed, "no reconnection request"
        except BaseException:
            print(system.logs())
            raise
        finally:
            proxy.stop()
    assert not errors, f"errors in the page: {errors}"


# Imports the served client module and starts it on SSE; events and states are recorded.
START_CLIENT = """async (token) => {
  const { RealtimeClient, VERSION } = await import("/rag-client.js");
  window.__events = [];
  window.__states = [];
  window.__client = new RealtimeClient({
    token,
    transport: "sse",
    onEvent: (event) => window.__events.push([event.id, event.type]),
    onState: (state, info) => window.__states.push([state, info.transport]),
  }).start();
  return VERSION;
}"""


def test_client_library_in_chromium_over_sse(
    system_factory: SystemFactory, launch_browser: Callable[[], Browser]
) -> None:
    system: System = system_factory(workers=False)
    user = uuid.uuid4()
    token = system.token(user)
    rest = system.http_client(system.api, token)
    workspace_id = rest.post("/api/workspaces", json={"name": "sse"}).json()["id"]
    with watched_page(launch_browser()) as (page, errors):
        sockets: list[str] = []
        streams: list[Request] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.on("request", lambda r: streams.append(r) if "/api/events/stream" in r.url else None)
        try:
            page.goto(f"{system.api.url}/healthz")  # the api's origin, without the console's own client
            assert page.evaluate(START_CLIENT, token) == "0.1.0"
            page.wait_for_function("window.__client.state === 'live'")
            upload(rest, workspace_id, "one.txt")
            upload(rest, workspace_id, "two.txt")
            page.wait_for_function("window.__events.length >= 4")
            time.sleep(0.5)
            assert page.evaluate("window.__events") == [
                [2, "document.created"],
                [3, "job.status_updated"],
                [4, "document.created"],
                [5, "job.status_updated"],
            ]
            assert page.evaluate("window.__client.transport") == "sse"
            assert ["live", "sse"] in page.evaluate("window.__states")
            assert not sockets, sockets
            assert len(streams) == 1, [r.url for r in streams]
            assert "token=" not in streams[0].url, "the token travels in the Authorization header"
            assert streams[0].all_headers().get("authorization") == f"Bearer {token}"
            page.evaluate("window.__client.close()")
        except BaseException:
            print(system.logs())
            raise
    assert not errors, f"errors in the page: {errors}"
