"""rag_observability.tracing: off without an endpoint, and what it gives when a span is current.

The SDK's global provider can be set once per process, so these tests never set it: they use
a provider of their own, whose spans are made current the way the services' are.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rag_observability.logging import add_trace_context
from rag_observability.tracing import (
    configure_tracing,
    context_of,
    current_traceparent,
    name_server_span,
    tracing_wanted,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def local_tracer() -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_tracing_is_wanted_only_with_an_endpoint_and_the_sdk_not_disabled() -> None:
    assert not tracing_wanted({})
    assert not tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": " "})
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})


def test_without_an_endpoint_nothing_is_installed_and_nothing_is_propagated() -> None:
    assert configure_tracing("rag-test", environ={}) is None
    assert current_traceparent() is None
    assert add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}


@pytest.mark.integration  # starts a process
def test_without_an_endpoint_the_sdk_is_not_imported() -> None:
    """A fresh interpreter: configure_logging + configure_tracing load the API only."""
    import subprocess

    code = (
        "import sys; from rag_observability import configure_logging, configure_tracing;"
        "configure_logging(); assert configure_tracing('x', environ={}) is None;"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'google.protobuf'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_stored_traceparent_is_continued_and_the_current_one_is_stored() -> None:
    tracer, exporter = local_tracer()
    with tracer.start_as_current_span("job", context=context_of(TRACEPARENT)) as span:
        stored = current_traceparent()
        ids = span.get_span_context()
    assert stored == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-01"
    (finished,) = exporter.get_finished_spans()
    assert f"{finished.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert finished.parent is not None and f"{finished.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert context_of(None) is None and context_of("") is None


def test_log_lines_in_a_span_carry_its_trace_and_span_ids() -> None:
    tracer, _ = local_tracer()
    out = io.StringIO()
    structlog.configure(
        processors=[add_trace_context, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        log.info("outside")
        with tracer.start_as_current_span("work", context=context_of(TRACEPARENT)) as span:
            log.info("inside")
            span_id = f"{span.get_span_context().span_id:016x}"
    finally:
        structlog.reset_defaults()
    outside, inside = (json.loads(line) for line in out.getvalue().splitlines())
    assert "trace_id" not in outside and "span_id" not in outside
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and inside["span_id"] == span_id


def test_a_server_span_is_named_by_its_route_template() -> None:
    tracer, exporter = local_tracer()
    with tracer.start_as_current_span("POST", kind=trace.SpanKind.SERVER):
        name_server_span("POST", "/api/workspaces/{workspace_id:uuid}/documents/upload")
    name_server_span("GET", "/outside/any/span")  # no span: nothing to name, no error
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "POST /api/workspaces/{workspace_id}/documents/upload"
    assert finished.attributes == {"http.route": "/api/workspaces/{workspace_id}/documents/upload"}
