"""Realtime delivery: the WebSocket and SSE fan-out, REST resync and event-log retention.

Wiring (the app): `hub = RealtimeHub(pool=pool, listen_dsn=settings.listen_dsn,
settings=settings)`; `await hub.start()` in the lifespan, `await hub.stop()` at
shutdown; `hub.ready` for /readyz; `app.state.hub = hub`; routes
`WebSocketRoute("/api/ws", websocket_endpoint)`, `Route("/api/events/stream",
event_stream_endpoint)` (the same stream as SSE) and `Route("/api/events", events_endpoint)`.
Protocol for client authors: docs/realtime.md.
"""

from rag_api.realtime.endpoint import websocket_endpoint
from rag_api.realtime.events import events_endpoint
from rag_api.realtime.hub import RealtimeHub
from rag_api.realtime.sse import event_stream_endpoint

__all__ = ["RealtimeHub", "event_stream_endpoint", "events_endpoint", "websocket_endpoint"]
