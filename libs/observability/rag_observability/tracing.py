"""OpenTelemetry tracing: an OTLP exporter when an endpoint is configured, the no-op API otherwise.

Configuration is the SDK's own environment, read by the SDK itself: OTEL_EXPORTER_OTLP_ENDPOINT
(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns tracing on; OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_* and
OTEL_SDK_DISABLED mean what the specification says. Without an endpoint `configure_tracing`
installs nothing and does not even import the SDK: every span is the API's no-op span, and
`current_traceparent` answers None at its first check.

A trace crosses processes as a W3C `traceparent` string (version-trace id-span id-flags):
the HTTP request's arrives in its header, a job row and an event row store the one current
when they were written, and the worker or api replica that picks them up starts its span as
a child of it (`span(..., parent=...)`). The string, not a Context object, is what is
stored: a column of text, whatever reads it back. (rag_eventbus, beside this library rather
than above it, reads the current one with the same few lines of the API.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("rag_observability")
_CONVERTER = re.compile(r"\{(\w+):[^}]*\}")  # Starlette's "{id:uuid}" -> "{id}"

__all__ = [
    "ENDPOINT_VARIABLES",
    "Span",
    "SpanKind",
    "Tracing",
    "configure_tracing",
    "context_of",
    "current_traceparent",
    "mark_failed",
    "name_server_span",
    "span",
    "tracing_wanted",
]


def tracing_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """An OTLP endpoint is set and the SDK is not disabled (OTEL_SDK_DISABLED=true)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


class Tracing:
    """The installed SDK: `shutdown` exports what is still buffered (call it once, at exit)."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def shutdown(self) -> None:
        self._provider.shutdown()


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """Install the SDK with a batching OTLP/HTTP exporter when `tracing_wanted`; else None.

    `service` is the service.name unless OTEL_SERVICE_NAME says otherwise. The sampler is
    the SDK's default (parent-based, always on) or OTEL_TRACES_SAMPLER's.
    """
    if not tracing_wanted(environ):
        return None
    # Imported here: a process that traces nothing never loads the SDK or protobuf.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if environ.get("OTEL_SERVICE_NAME", "").strip() else {SERVICE_NAME: service}
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; `attributes` win over
    # them, hence the default name only when none is configured.
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return Tracing(provider)


def current_traceparent() -> str | None:
    """The current span's context as a W3C traceparent, or None outside any (valid) span."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> Context | None:
    """A Context whose current span is the remote one `traceparent` names (None: none given)."""
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def span(
    name: str,
    *,
    parent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> AbstractContextManager[Span]:
    """A span made current for the block: a child of `parent` (a traceparent) when given, else
    of the current span. An exception leaving the block is recorded and marks it failed.

    The API's own context manager, not a wrapper: with tracing off it is the no-op API's cost."""
    return _TRACER.start_as_current_span(name, context=context_of(parent), kind=kind, attributes=attributes)


def mark_failed(target: Span, description: str) -> None:
    """Mark a span failed for an error its code caught (and so did not propagate)."""
    target.set_status(Status(StatusCode.ERROR, description))


def name_server_span(method: str, route: str) -> None:
    """Name the current (server) span by its route template once the router has matched it,
    as HTTP semantic conventions say (`POST /items/{item_id}`, converters left out)."""
    current = trace.get_current_span()
    if current.is_recording():
        template = _CONVERTER.sub(r"{\1}", route)
        current.update_name(f"{method} {template}")
        current.set_attribute("http.route", template)
