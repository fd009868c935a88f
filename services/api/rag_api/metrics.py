"""Prometheus metrics of the api process (served at /metrics).

Every label value comes from a fixed set (the label functions below), never from the
client as sent: each distinct value is a series held in memory for the life of the
process, so a client that sends made-up methods, statuses or close codes must not be
able to create one per request.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("rag_api_requests_total", "HTTP requests", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("rag_api_request_seconds", "HTTP request duration", ["method", "route"])
WEBSOCKETS_OPEN = Gauge("rag_api_websockets_open", "Open WebSocket connections")
WEBSOCKET_CLOSES = Counter("rag_api_websocket_closes_total", "WebSocket closes by code", ["code"])
SSE_STREAMS_OPEN = Gauge("rag_api_sse_streams_open", "Open SSE streams (GET /api/events/stream)")
# `code`: the close code the server ended the stream with, or `client` when the client left.
SSE_CLOSES = Counter("rag_api_sse_closes_total", "SSE stream ends by close code", ["code"])
EVENTS_DELIVERED = Counter(
    "rag_api_events_delivered_total", "Events sent to realtime clients (WebSocket and SSE)"
)
LISTENER_RECONNECTS = Gauge("rag_api_listener_reconnects", "Reconnections of the realtime listener")
LISTENER_CONNECTED = Gauge("rag_api_listener_connected", "1 while the realtime listener is connected")
UPLOAD_BYTES = Counter("rag_api_upload_bytes_total", "Bytes of accepted uploads")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The statuses the app sends (docs/contract.md §4, docs/api.md), plus 499 for a client that left.
KNOWN_STATUSES = frozenset(
    {200, 201, 202, 204, 206, 304, 400, 401, 403, 404, 405, 408, 409, 413, 415, 416, 422, 429, 499, 500, 503}
)
# Codes the server sends or a well-behaved client closes with (docs/realtime.md).
KNOWN_CLOSE_CODES = frozenset({1000, 1001, 1005, 1006, 1009, 1011, 4401, 4408, 4429})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


def status_label(status: int) -> str:
    """The status itself when the app may send it, else its class (`5xx`): at most 10 more."""
    if status in KNOWN_STATUSES:
        return str(status)
    return f"{status // 100}xx" if 100 <= status <= 999 else "other"


def close_code_label(code: object) -> str:
    return str(code) if code in KNOWN_CLOSE_CODES else "other"
