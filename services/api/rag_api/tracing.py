"""The api's server spans: OpenTelemetry's ASGI middleware around the app, when tracing is on.

One SERVER span per HTTP request, the child of the request's `traceparent` header when it
has one (W3C; OTEL_PROPAGATORS says which formats are read), named by the route template
once the router has matched it (RequestContextMiddleware renames it: the middleware sees only
the raw path, ids and all). Left out: the probes and /metrics (noise), and the realtime
streams (/api/ws, /api/events/stream), whose "request" is a session of hours; each event
frame they send has a span of its own instead, in the trace the event was published in
(rag_api.realtime.connection). The middleware's per-message `receive`/`send` spans are off:
an upload would get one per body chunk.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.util.http import ExcludeList
from starlette.types import ASGIApp

UNTRACED_PATHS = ["/healthz$", "/readyz$", "/metrics$", "/api/ws$", "/api/events/stream$"]


def _method_only(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The span's name until the route is known: the method (never the raw path)."""
    return str(scope.get("method", "HTTP")), {}


def traced(app: ASGIApp) -> ASGIApp:
    """`app` behind the ASGI middleware (call only when tracing is configured)."""
    return OpenTelemetryMiddleware(  # type: ignore[no-any-return]
        app,
        excluded_urls=ExcludeList(UNTRACED_PATHS),
        default_span_details=_method_only,
        exclude_spans=["receive", "send"],
    )
