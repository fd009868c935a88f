"""WS_COMPRESSION: permessage-deflate refused by default, bounded when enabled.

Real `rag-api` processes (hypercorn) and the `websockets` client, which offers
permessage-deflate with `client_max_window_bits` as browsers do; the framing rules of
`BoundedDeflate` are checked on wsproto's own frame protocol.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from uuid import UUID

import pytest
from psycopg import AsyncConnection
from websockets.asyncio.client import connect
from wsproto.frame_protocol import FrameProtocol, Opcode, RsvBits

from rag_api.ws_compression import BoundedDeflate, CompressionPolicy, DeclinedDeflate, _bounded_offer
from rag_core.events import DocumentStatusUpdated, Event
from rag_eventbus import publish
from rag_testing.pytest_plugin import module_system
from rag_testing.system import System
from rag_testing.wsclient import FrameClient

pytestmark = pytest.mark.anyio

BROWSER_OFFER = "permessage-deflate; client_max_window_bits"


# -- the rules, on wsproto's frame protocol --------------------------------------------


def server_protocol(extension: BoundedDeflate) -> FrameProtocol:
    return FrameProtocol(client=False, extensions=[extension])


def test_small_messages_go_uncompressed_and_large_ones_decode_with_a_full_window() -> None:
    policy = CompressionPolicy(enabled=True, window_bits=10, min_bytes=512)
    deflate = BoundedDeflate(policy)
    assert deflate.accept(BROWSER_OFFER) == "client_max_window_bits=10"
    proto = server_protocol(deflate)

    small = b'{"type":"ping"}'
    rsv, data = deflate.frame_outbound(proto, Opcode.TEXT, RsvBits(False, False, False), small, True)
    assert rsv.rsv1 is False and data == small
    assert deflate._compressor is None  # an idle socket that only got small frames holds no zlib state

    large = b'{"type":"document.status_updated","payload":{"text":"' + b"lorem ipsum " * 200 + b'"}}'
    for _ in range(2):  # the second message reuses the context (context takeover)
        rsv, data = deflate.frame_outbound(proto, Opcode.TEXT, RsvBits(False, False, False), large, True)
        assert rsv.rsv1 is True and len(data) < len(large) / 5
    # A client decodes with the 32 KiB window it was promised: the smaller one is compatible.
    inflater = zlib.decompressobj(-15)
    first = inflater.decompress(deflate_message(policy, large) + b"\x00\x00\xff\xff")
    assert first == large


def deflate_message(policy: CompressionPolicy, message: bytes) -> bytes:
    deflate = BoundedDeflate(policy)
    deflate.accept(BROWSER_OFFER)
    _, data = deflate.frame_outbound(
        server_protocol(deflate), Opcode.TEXT, RsvBits(False, False, False), message, True
    )
    return data


@pytest.mark.parametrize(
    ("offer", "bounded"),
    [
        (BROWSER_OFFER, BROWSER_OFFER),
        ("permessage-deflate; client_max_window_bits=15", "permessage-deflate; client_max_window_bits=11"),
        ("permessage-deflate; client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9"),
        ("permessage-deflate; server_max_window_bits=13", "permessage-deflate; server_max_window_bits=11"),
        ("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        ("permessage-deflate; client_max_window_bits=abc", None),
        ("permessage-deflate; client_max_window_bits=8", None),
        ("permessage-deflate; client_max_window_bits=99999999999999999999", None),
        ("permessage-deflate; client_max_window_bits=１５", None),  # fullwidth digits
    ],
)
def test_offers_are_bounded_and_malformed_ones_declined(offer: str, bounded: str | None) -> None:
    assert _bounded_offer(offer, 11) == bounded


def test_the_declining_extension_accepts_no_offer() -> None:
    assert DeclinedDeflate().accept(BROWSER_OFFER) is None


# -- real api processes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_api(
    pg_admin_dsn: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with module_system(
        pg_admin_dsn, s3_server, tmp_path_factory.mktemp("ws-comp-off"), "ws-comp-off", workers=False
    ) as started:
        yield started


@pytest.fixture(scope="module")
def compressing_api(
    pg_admin_dsn: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with module_system(
        pg_admin_dsn,
        s3_server,
        tmp_path_factory.mktemp("ws-comp-on"),
        "ws-comp-on",
        workers=False,
        WS_COMPRESSION="true",
        WS_COMPRESSION_WINDOW_BITS="10",
    ) as started:
        yield started


async def events_received(
    system: System, extension_header: str | None = None
) -> tuple[str | None, list[str]]:
    """Connect offering deflate (or sending `extension_header` as it is), publish a small and
    a large event, return the server's extension answer and the two events' payload errors."""
    user = uuid.uuid4()
    response = system.client(user).post("/api/workspaces", json={"name": "compression"})
    assert response.status_code == 201
    workspace = UUID(response.json()["id"])
    url = f"{system.api.ws_url}?token={system.token(user)}"
    options: dict[str, object] = {"max_size": None, "open_timeout": 10}
    if extension_header is not None:
        options |= {"compression": None, "additional_headers": {"Sec-WebSocket-Extensions": extension_header}}
    async with connect(url, **options) as ws:  # type: ignore[arg-type]
        answer = ws.response.headers.get("Sec-WebSocket-Extensions")
        client = FrameClient(ws)
        assert (await client.frame(timeout=10))["type"] == "hello"
        errors = ["small", "large " + "x" * 4000]
        async with await AsyncConnection.connect(system.env["DATABASE_URL"]) as conn, conn.transaction():
            await publish(
                conn,
                [
                    Event.of(
                        DocumentStatusUpdated(
                            workspace_id=workspace, document_id=uuid.uuid4(), status="error", error=e
                        )
                    )
                    for e in errors
                ],
            )
        received = []
        while len(received) < len(errors):
            frame = await client.frame(timeout=10)
            if frame.get("type") == "document.status_updated":
                received.append(frame["payload"]["error"])
    return answer, received


async def test_by_default_a_browser_offer_is_refused_and_events_arrive(default_api: System) -> None:
    answer, received = await events_received(default_api)
    assert answer is None
    assert received == ["small", "large " + "x" * 4000]


async def test_enabled_the_client_window_is_bounded_and_events_arrive(compressing_api: System) -> None:
    answer, received = await events_received(compressing_api)
    assert answer == "permessage-deflate; client_max_window_bits=10"
    assert received == ["small", "large " + "x" * 4000]


@pytest.mark.parametrize(
    "header",
    [
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=" + "9" * 5000,
        "permessage-deflate; client_max_window_bits=7",
    ],
)
async def test_a_malformed_offer_is_declined_and_the_socket_works(
    compressing_api: System, header: str
) -> None:
    answer, received = await events_received(compressing_api, header)
    assert answer is None
    assert received == ["small", "large " + "x" * 4000]
