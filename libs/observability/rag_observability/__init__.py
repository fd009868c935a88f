"""Logging, probes and tracing set up the same way in every service."""

from rag_observability.logging import configure_logging
from rag_observability.probes import ProbeServer
from rag_observability.tracing import Tracing, configure_tracing

__all__ = ["ProbeServer", "Tracing", "configure_logging", "configure_tracing"]
