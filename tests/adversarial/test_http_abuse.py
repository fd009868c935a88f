"""HTTP abuse against a real `rag-api` process, each input sent as an attacker would.

- 10,000 requests with made-up methods: the api's memory and the size of /metrics stay
  flat (metrics labels come from a fixed set).
- A refused request with a 100 MB Content-Length: the client reads the 401 at once, even
  while it keeps writing; the server does not read the 100 MB.
- A body that stalls mid-way: the connection is closed after REQUEST_READ_TIMEOUT_SECONDS,
  nothing is stored (no row, no object, no unfinished multipart upload), memory released.
- NUL characters and out-of-range numbers on every route that takes them: 400/422, never 500.
"""

from __future__ import annotations

import asyncio
import base64
import random
import select
import socket
import string
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psutil
import pytest

from rag_testing.pytest_plugin import module_system
from rag_testing.system import System

READ_TIMEOUT = 2  # REQUEST_READ_TIMEOUT_SECONDS of the api under test


@pytest.fixture(scope="module")
def system(pg_admin_dsn: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One api process (no workers) on a database and bucket of this module."""
    with module_system(
        pg_admin_dsn,
        s3_server,
        tmp_path_factory.mktemp("adv-http"),
        "adv-http",
        workers=False,
        REQUEST_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
    ) as started:
        yield started


def rss_mb(system: System) -> float:
    return float(psutil.Process(system.api.process.pid).memory_info().rss) / 2**20


def series_names(metrics_text: str) -> list[str]:
    """Every series of a /metrics page (name and labels, without the value)."""
    return [
        line.rpartition(" ")[0] for line in metrics_text.splitlines() if line and not line.startswith("#")
    ]


# -- a minimal HTTP/1.1 client on raw sockets (what an attacker would script) -------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def random_method(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))


async def hammer(port: int, requests: int, connections: int, seed: int) -> dict[int, int]:
    """`requests` requests with random methods over `connections` keep-alive connections."""
    statuses: dict[int, int] = {}
    paths = ["/api/workspaces", "/api/events", "/healthz", f"/api/documents/{uuid.uuid4()}", "/nowhere"]

    async def one_connection(index: int, count: int) -> None:
        rng = random.Random(seed * 1000 + index)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                request = f"{random_method(rng)} {rng.choice(paths)} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
                writer.write(request.encode())
                status, headers, _ = await read_response(reader)
                statuses[status] = statuses.get(status, 0) + 1
                if headers.get("connection") == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    per = requests // connections
    await asyncio.gather(*(one_connection(i, per) for i in range(connections)))
    return statuses


def test_10000_requests_with_random_methods_keep_memory_and_metrics_flat(system: System) -> None:
    port = system.api.port
    asyncio.run(hammer(port, 1000, 10, seed=1))  # warm-up: caches, allocator arenas, first series
    httpx.get(f"{system.api.url}/metrics")  # (its own series appear after its first answer)
    metrics_before = httpx.get(f"{system.api.url}/metrics").text
    rss_before = rss_mb(system)

    started = time.monotonic()
    statuses = asyncio.run(hammer(port, 10_000, 20, seed=2))
    elapsed = time.monotonic() - started

    metrics_after = httpx.get(f"{system.api.url}/metrics").text
    rss_after = rss_mb(system)
    print(f"10,000 requests in {elapsed:.1f}s: {statuses}; RSS {rss_before:.1f} -> {rss_after:.1f} MB")
    assert sum(statuses.values()) == 10_000
    assert all(status < 500 for status in statuses), statuses
    # The request series are exactly those of the warm-up; elsewhere a few series may appear
    # meanwhile by themselves (the answer worker's wake-up causes), never one per request.
    request_series = [n for n in series_names(metrics_after) if n.startswith("rag_api_request")]
    assert request_series == [n for n in series_names(metrics_before) if n.startswith("rag_api_request")]
    assert len(series_names(metrics_after)) - len(series_names(metrics_before)) <= 10
    assert abs(len(metrics_after) - len(metrics_before)) < 2000  # only counter values changed
    assert 'method="OTHER"' in metrics_after
    assert rss_after - rss_before < 8, f"RSS grew from {rss_before:.1f} to {rss_after:.1f} MB"


def refused_upload_head(port: int, length: int) -> bytes:
    return (
        f"POST /api/workspaces/{uuid.uuid4()}/documents/upload HTTP/1.1\r\nHost: t\r\n"
        f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_refused_request_with_100_mb_body_is_answered_at_once_while_the_client_writes(system: System) -> None:
    """No token, Content-Length 100 MB: a client that writes slowly and then reads gets the
    401 within seconds, although it sent only a sliver; and it still gets it when it goes
    on writing after the answer (the server lingers instead of resetting the connection)."""
    port = system.api.port
    for keep_writing in (False, True):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        started = time.monotonic()
        sock.sendall(refused_upload_head(port, 100 * 2**20))
        for _ in range(8):  # 512 KiB in slow pieces
            sock.sendall(b"-" * 65536)
            time.sleep(0.05)
        if keep_writing:
            for _ in range(16):
                try:
                    sock.sendall(b"-" * 65536)
                except OSError:
                    break  # the server closed after lingering: fine, the answer is in our buffer
                time.sleep(0.02)
        received = b""
        while b"\r\n\r\n" not in received or b"}}" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        elapsed = time.monotonic() - started
        sock.close()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401"), received[:300]
        assert b"connection: close" in head.lower()
        assert orjson.loads(body)["error"]["code"] == "unauthorized"
        assert elapsed < 10, f"the 401 took {elapsed:.1f}s"


def test_refused_small_body_keeps_the_connection_usable(system: System) -> None:
    with httpx.Client(base_url=system.api.url) as client:
        first = client.post(f"/api/workspaces/{uuid.uuid4()}/documents/upload", content=b"x" * 5000)
        second = client.get("/healthz")
    assert first.status_code == 401 and "connection" not in first.headers
    assert second.status_code == 200


def test_a_request_whose_headers_never_end_is_cut_by_the_keep_alive_timeout(system: System) -> None:
    """A slowloris (one header line every 0.5 s, never the blank line) holds no connection
    for long: hypercorn counts the connection as idle until the headers are complete."""
    sock = socket.create_connection(("127.0.0.1", system.api.port), timeout=30)
    started = time.monotonic()
    sock.sendall(b"POST /api/workspaces HTTP/1.1\r\nHost: t\r\n")
    closed = False
    while not closed and time.monotonic() - started < 20:
        time.sleep(0.5)
        try:
            sock.sendall(b"X-Slow: 1\r\n")
            if select.select([sock], [], [], 0)[0]:
                closed = sock.recv(65536) == b""
        except OSError:
            closed = True
    sock.close()
    assert closed, "the connection was still open after 20 s of slow headers"
    assert time.monotonic() - started < 15


def stalled_upload(port: int, token: str, workspace_id: str, sent_bytes: int) -> tuple[float, bytes]:
    """Send the head and `sent_bytes` of a 2×sent_bytes upload, then stall; (seconds until
    the server ended the connection, what it answered)."""
    prefix = (
        b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="stalled.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    head = (
        f"POST /api/workspaces/{workspace_id}/documents/upload HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {2 * sent_bytes}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head + prefix)
    line = b"stalled upload text line\n" * 2600  # ~64 KiB
    sent = 0
    while sent < sent_bytes:
        sock.sendall(line)
        sent += len(line)
    started = time.monotonic()
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    sock.close()
    return time.monotonic() - started, received


def test_a_stalled_upload_is_closed_and_leaves_nothing(system: System) -> None:
    users = [uuid.uuid4() for _ in range(3)]
    workspaces = []
    for user in users:
        response = system.client(user).post("/api/workspaces", json={"name": "stall"})
        assert response.status_code == 201
        workspaces.append(response.json()["id"])

    async def all_stalled() -> list[tuple[float, bytes]]:
        # 20 MiB each: more than two S3 parts, so a multipart upload is in progress at the stall.
        return list(
            await asyncio.gather(
                *(
                    asyncio.to_thread(stalled_upload, system.api.port, system.token(u), w, 20 * 2**20)
                    for u, w in zip(users, workspaces, strict=True)
                )
            )
        )

    rss = [rss_mb(system)]
    for _ in range(5):  # the first two rounds size the allocator; later rounds must not add to it
        for elapsed, answer in asyncio.run(all_stalled()):
            assert elapsed < READ_TIMEOUT + 8, f"the connection stayed open {elapsed:.1f}s"
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"connection: close" in answer.lower()
            assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
        rss.append(rss_mb(system))

    for user, workspace in zip(users, workspaces, strict=True):
        listed = system.client(user).get(f"/api/workspaces/{workspace}/documents")
        assert listed.status_code == 200 and listed.json()["items"] == []
    objects, uploads = system.bucket_contents()
    assert objects == [] and uploads == []
    print("RSS before and after each round of 3 stalled 20 MiB uploads:", [f"{r:.1f}" for r in rss])
    # 60 MiB of body arrive per round: kept bodies would add 120 MB or more over the last
    # three rounds. A single reading swings by a few tens of MB (8 MiB parts being sent to S3
    # have copies in flight, freed heap is not always returned; seen: 115, 135, 167, 167, 159),
    # so the high-water mark of the first two rounds is the baseline and the lower of the last
    # two readings counts.
    warmed = max(rss[1:3])
    assert min(rss[-2:]) - warmed < 30, f"RSS kept growing over the rounds: {rss}"
    assert rss[1] - rss[0] < 60, f"RSS grew by {rss[1] - rss[0]:.1f} MB on the first round"


# -- NUL characters and numbers out of range, route by route ---------------------------------


@pytest.fixture(scope="module")
def owner(system: System) -> dict[str, Any]:
    """A user who owns a workspace with a conversation, and an httpx client for them."""
    user = uuid.uuid4()
    client = system.client(user)
    workspace = client.post("/api/workspaces", json={"name": "owner"}).json()["id"]
    conversation = client.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()["id"]
    return {"user": user, "client": client, "workspace": workspace, "conversation": conversation}


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


BIG = "18446744073709551616"  # 2^64
SUPERSCRIPT_TWO = "²"


def bad_query_cases(ws: str) -> list[tuple[str, dict[str, str], int, str]]:
    docs, search = f"/api/workspaces/{ws}/documents", f"/api/workspaces/{ws}/search"
    good_id = str(uuid.uuid4())
    return [
        (docs, {"limit": SUPERSCRIPT_TWO}, 400, "invalid_parameter"),
        (docs, {"limit": BIG}, 400, "invalid_parameter"),
        (docs, {"limit": "9" * 5000}, 400, "invalid_parameter"),
        (docs, {"limit": "٣"}, 400, "invalid_parameter"),
        (docs, {"limit": "1\x00"}, 422, "validation_error"),
        (docs, {"status": "queued\x00"}, 422, "validation_error"),
        (docs, {"cursor": "\x00"}, 422, "validation_error"),
        (docs, {"cursor": "not-a-cursor!"}, 400, "invalid_cursor"),
        (docs, {"cursor": cursor_of({"a": 1, "b": 2})}, 400, "invalid_cursor"),
        (docs, {"cursor": cursor_of(["2026-01-01T00:00:00+00:00", good_id, 3])}, 400, "invalid_cursor"),
        (docs, {"cursor": cursor_of(["2026-01-01T00:00:00+00:00", {"x": 1}])}, 400, "invalid_cursor"),
        (docs, {"cursor": cursor_of(["0001-01-01T00:00:00+14:00", good_id])}, 400, "invalid_cursor"),
        (docs, {"cursor": cursor_of(["2026-01-01T00:00:00", good_id])}, 400, "invalid_cursor"),
        (docs, {"cursor": cursor_of(123)}, 400, "invalid_cursor"),
        (search, {"q": "a\x00b"}, 400, "invalid_query"),
        (search, {"q": "a", "k": BIG}, 400, "invalid_parameter"),
        (search, {"q": "a", "k": SUPERSCRIPT_TWO}, 400, "invalid_parameter"),
        (search, {"q": "a", "k": "1e3"}, 400, "invalid_parameter"),
        (search, {"q": "a", "k": "5\x00"}, 422, "validation_error"),
        ("/api/events", {"after": BIG}, 400, "invalid_parameter"),
        ("/api/events", {"after": "9223372036854775808"}, 400, "invalid_parameter"),
        ("/api/events", {"after": SUPERSCRIPT_TWO}, 400, "invalid_parameter"),
        ("/api/events", {"after": "-1"}, 400, "invalid_parameter"),
        ("/api/events", {"limit": "9" * 5000}, 400, "invalid_parameter"),
        ("/api/events", {"after": "1\x00"}, 422, "validation_error"),
    ]


def test_nul_and_out_of_range_query_parameters_are_clear_refusals(owner: dict[str, Any]) -> None:
    client: httpx.Client = owner["client"]
    for path, params, status, code in bad_query_cases(owner["workspace"]):
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        response = client.get(f"{path}?{query}")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (path, params)


def test_the_largest_valid_numbers_are_accepted(owner: dict[str, Any]) -> None:
    client: httpx.Client = owner["client"]
    response = client.get("/api/events", params={"after": str(2**63 - 1), "limit": "1000"})
    assert response.status_code == 200 and response.json()["items"] == []
    response = client.get(f"/api/workspaces/{owner['workspace']}/documents", params={"limit": "200"})
    assert response.status_code == 200


def test_nul_in_any_json_string_or_key_is_a_validation_error(owner: dict[str, Any]) -> None:
    client: httpx.Client = owner["client"]
    ws, conversation = owner["workspace"], owner["conversation"]
    cases = [
        ("/api/workspaces", {"name": "a\x00b"}),
        ("/api/workspaces", {"name": "ok", "extra\x00": 1}),
        ("/api/workspaces", {"name": "ok", "nested": [{"deep": ["\x00"]}]}),
        (f"/api/workspaces/{ws}/members", {"user_id": f"{uuid.uuid4()}\x00", "role": "member"}),
        (f"/api/workspaces/{ws}/members", {"user_id": str(uuid.uuid4()), "role": "member\x00"}),
        (f"/api/workspaces/{ws}/conversations", {"title": "\x00"}),
        (f"/api/conversations/{conversation}/messages", {"content": "what is\x00 this?"}),
    ]
    for path, body in cases:
        response = client.post(path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["error"]["code"] == "validation_error"
        assert "NUL" in response.json()["error"]["message"]
    # Nothing was created by any of them.
    titles = [c["title"] for c in client.get(f"/api/workspaces/{ws}/conversations").json()["items"]]
    assert titles == ["t"]
