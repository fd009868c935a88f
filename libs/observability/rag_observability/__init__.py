"""Logging and metrics set up the same way in every service."""

from rag_observability.logging import configure_logging
from rag_observability.probes import ProbeServer

__all__ = ["ProbeServer", "configure_logging"]
