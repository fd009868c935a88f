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
# The Redis broker (EVENTBUS_BROKER=redis, rag_api/realtime/brokers.py); all 0 with the Postgres one.
# Counts since the process started, read from the relay and the subscriber when scraped.
REDIS_RELAY_ACTIVE = Gauge("rag_api_redis_relay_active", "1 while this replica's relay is the one forwarding")
REDIS_RELAY_FORWARDED = Gauge(
    "rag_api_redis_relay_forwarded", "Notices this replica's relay forwarded to Redis"
)
REDIS_RELAY_PUBLISH_ERRORS = Gauge(
    "rag_api_redis_relay_publish_errors", "Failed publishes to Redis (each followed by a refill)"
)
REDIS_RELAY_REFILLS = Gauge("rag_api_redis_relay_refills", "Refill messages this replica's relay published")
REDIS_RELAY_DROPPED = Gauge(
    "rag_api_redis_relay_dropped", "Notices dropped while the relay's queue was full (a refill covers them)"
)
REDIS_SUBSCRIBER_CONNECTED = Gauge(
    "rag_api_redis_subscriber_connected", "1 while the Redis subscription is up"
)
REDIS_SUBSCRIBER_ERRORS = Gauge(
    "rag_api_redis_subscriber_errors",
    "Redis subscription failures (each followed by a reconnect and a refill)",
)
REDIS_SUBSCRIBER_REFILLS = Gauge("rag_api_redis_subscriber_refills", "Refill messages received")
# Every read of all local users' gaps from the log because notices may have been lost:
# `cause` reconnect (the Postgres listener, or the Redis subscription, came back) | refill (the relay's).
REALTIME_CATCH_UPS = Counter(
    "rag_api_realtime_catch_ups_total", "Catch-ups of every local connection", ["cause"]
)
# A connection's events in memory, dropped to be read from the log instead: more than
# WS_SEND_QUEUE_MAX waited behind a replay (docs/realtime.md, "Flow control").
REALTIME_SPILLS = Counter("rag_api_realtime_spills_total", "Connections' in-memory events left to the log")
UPLOAD_BYTES = Counter("rag_api_upload_bytes_total", "Bytes of accepted uploads")
# From an event's created_at (set in its producer's transaction, by the database's clock) to its
# frame written to a socket or stream, for events newer than that connection: live delivery, not
# the replay of a resume. Includes the producer's transaction time after the insert.
EVENT_DELIVERY_SECONDS = Histogram(
    "rag_api_event_delivery_seconds",
    "Event insert to its frame written (live events)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Housekeeping (rag_api.periodic): `task` event_prune | orphan_sweep; `outcome` done (this replica
# did the round), skipped (another replica holds the lock), failed (logged as periodic_round_failed).
HOUSEKEEPING_ROUNDS = Counter(
    "rag_api_housekeeping_rounds_total", "Housekeeping rounds by outcome", ["task", "outcome"]
)
HOUSEKEEPING_LAST_SUCCESS = Gauge(
    "rag_api_housekeeping_last_success_timestamp_seconds",
    "When a round of the task last succeeded here, done or skipped (Unix time)",
    ["task"],
)
EVENTS_PRUNED = Counter("rag_api_events_pruned_total", "Events removed by retention")
ORPHAN_SWEEP_OBJECTS = Counter(
    "rag_api_orphan_sweep_objects_total",
    "Objects the orphan sweeper looked at, by result (deleted, too_young, unrecognised, kept)",
    ["result"],
)
STALE_UPLOADS_ABORTED = Counter(
    "rag_api_stale_uploads_aborted_total", "Unfinished multipart uploads aborted by the sweeper"
)

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
