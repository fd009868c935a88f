"""Prometheus metrics of the api process (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("rag_api_requests_total", "HTTP requests", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("rag_api_request_seconds", "HTTP request duration", ["method", "route"])
WEBSOCKETS_OPEN = Gauge("rag_api_websockets_open", "Open WebSocket connections")
WEBSOCKET_CLOSES = Counter("rag_api_websocket_closes_total", "WebSocket closes by code", ["code"])
EVENTS_DELIVERED = Counter("rag_api_events_delivered_total", "Events sent to WebSocket clients")
LISTENER_RECONNECTS = Gauge("rag_api_listener_reconnects", "Reconnections of the realtime listener")
LISTENER_CONNECTED = Gauge("rag_api_listener_connected", "1 while the realtime listener is connected")
UPLOAD_BYTES = Counter("rag_api_upload_bytes_total", "Bytes of accepted uploads")
