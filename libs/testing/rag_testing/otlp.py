"""A tiny OTLP/HTTP trace collector for tests: the services export to it as to a real one.

The api and the workers are separate processes, so an in-memory exporter inside them would
show a test nothing. Instead the test points OTEL_EXPORTER_OTLP_ENDPOINT at this server
(127.0.0.1, a free port, a thread): it accepts `POST /v1/traces` with the protobuf body the
SDK's OTLP/HTTP exporter sends (opentelemetry-proto decodes it) and keeps every span, so the
test exercises exactly the export path production uses. `tree` renders one trace as
indented text with durations (the dump in docs/observability.md comes from it).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

# Span kinds as OTLP numbers them (opentelemetry.proto.trace.v1.Span.SpanKind).
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class CollectedSpan:
    service: str
    name: str
    kind: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str  # "" for a root
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error: bool = False

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[CollectedSpan]:
    """The spans of one ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[CollectedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    CollectedSpan(
                        service=service,
                        name=s.name,
                        kind=KINDS.get(s.kind, str(s.kind)),
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        error=s.status.code == 2,  # STATUS_CODE_ERROR
                    )
                )
    return spans


class OtlpCollector:
    """`with OtlpCollector() as collector:` then give the services `collector.env`."""

    def __init__(self) -> None:
        self._spans: list[CollectedSpan] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding", "") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                spans = decode(body)
                with collector._lock:
                    collector._spans.extend(spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-collector", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def env(self) -> dict[str, str]:
        """What a service needs to export here, promptly (100 ms batches)."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }

    def __enter__(self) -> OtlpCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def spans(self) -> list[CollectedSpan]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[CollectedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(
        self, condition: Callable[[list[CollectedSpan]], bool], timeout: float = 60
    ) -> list[CollectedSpan]:
        """Every span so far, once `condition` holds for them (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans
            if condition(spans):
                return spans
            if time.monotonic() > deadline:
                by_trace = "\n\n".join(
                    tree([s for s in spans if s.trace_id == t]) for t in {s.trace_id for s in spans}
                )
                raise AssertionError(f"spans did not arrive in {timeout}s; have:\n{by_trace}")
            time.sleep(0.05)


def label(span: CollectedSpan) -> str:
    """A span's name, and for a frame's span which event it sent."""
    if "event.type" in span.attributes:
        return f"{span.name} #{span.attributes.get('event.id')} {span.attributes['event.type']}"
    return span.name


def tree(spans: list[CollectedSpan]) -> str:
    """One trace as an indented tree, children by start time, with offsets and durations.

    A span whose parent is not among `spans` (the caller's, from a `traceparent` header) is a
    root here.
    """
    ids = {s.span_id for s in spans}
    children: dict[str, list[CollectedSpan]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else "", []).append(s)
    origin = min((s.start_ns for s in spans), default=0)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda c: (c.start_ns, c.name)):
            text = f"{'  ' * depth}{label(s)}"
            lines.append(
                f"{text:<58} {s.service:<18} {s.kind:<9}"
                f" +{(s.start_ns - origin) / 1e6:8.1f} ms {s.duration_ms:8.1f} ms"
            )
            walk(s.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)
