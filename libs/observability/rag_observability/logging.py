"""structlog configuration: JSON lines for machines, `console` for humans.

Context (request id, user id, job id, document id) is bound with
`structlog.contextvars.bind_contextvars` and appears on every line of that task; the current
OpenTelemetry span adds `trace_id` and `span_id` (when tracing is on: rag_observability.tracing),
so a line leads to its trace and a trace to its lines.
Secrets never go through here: callers log ids, not tokens or DSNs.
"""

from __future__ import annotations

import logging
import sys

import structlog
from opentelemetry import trace


def add_trace_context(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """`trace_id` and `span_id` of the current span, in the hex form tracing backends show."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(level: str = "INFO", fmt: str = "json", service: str = "") -> None:
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if service:
        shared.append(lambda _l, _m, event: {**event, "service": service})
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries using stdlib logging (hypercorn, botocore) go to stderr at WARNING.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
