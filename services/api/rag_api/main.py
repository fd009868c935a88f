"""`rag-api`: serve the gateway with hypercorn on API_HOST:API_PORT until SIGTERM/SIGINT.

With an OTLP endpoint configured (docs/observability.md) the app is served behind the ASGI
tracing middleware (rag_api.tracing) and the spans still buffered are exported at exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.utils import LifespanFailureError
from starlette.applications import Starlette
from starlette.types import ASGIApp

from rag_api import ws_compression, ws_frame_limit
from rag_api.app import create_app
from rag_api.settings import ApiSettings
from rag_api.tracing import traced
from rag_core import event_loop
from rag_core.settings import load_settings
from rag_embedding import EmbeddingConfigurationError
from rag_observability import configure_tracing

GRACEFUL_SECONDS = 10.0


def hypercorn_config(settings: ApiSettings) -> Config:
    config = Config()
    host = f"[{settings.api_host}]" if ":" in settings.api_host else settings.api_host
    config.bind = [f"{host}:{settings.api_port}"]
    config.backlog = settings.api_listen_backlog
    config.accesslog = None  # the app logs each request with its request id
    # hypercorn's own lines go through stdlib logging (configured by configure_logging).
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_SECONDS
    config.startup_timeout = 60
    config.include_server_header = False
    # A client message (all its fragments) above WS_MAX_FRAME_BYTES: hypercorn closes the
    # socket with 1009 ("message too big") before the app sees it; ws_frame_limit makes it
    # do so without buffering what the client sends after.
    config.websocket_max_message_size = settings.ws_max_frame_bytes
    ws_frame_limit.install()
    ws_compression.install(
        ws_compression.CompressionPolicy(
            enabled=settings.ws_compression,
            window_bits=settings.ws_compression_window_bits,
            min_bytes=settings.ws_compression_min_bytes,
        )
    )
    # No hypercorn `read_timeout`: it would also cut idle WebSockets. The request body idle
    # timeout (REQUEST_READ_TIMEOUT_SECONDS) is the middleware's; slow request headers are
    # bounded by hypercorn's keep-alive timeout (the connection counts as idle until the
    # headers are complete).
    return config


async def _serve(app: Starlette, served: ASGIApp, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        # WebSockets never end by themselves: close them (1001, clients resume on another
        # replica) so that hypercorn's graceful shutdown does not wait its whole timeout.
        hub = getattr(app.state, "hub", None)
        if hub is not None:
            await hub.close_connections()

    await serve(served, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]


def main() -> None:
    settings = load_settings(ApiSettings)
    try:
        app = create_app(settings)
    except (ValueError, EmbeddingConfigurationError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    tracing = configure_tracing("rag-api")
    try:
        event_loop.run(
            _serve(app, traced(app) if tracing else app, hypercorn_config(settings)), settings.event_loop
        )
    except LifespanFailureError:
        reason = getattr(app.state, "startup_error", None) or "see the log above"
        print(f"rag-api: startup failed: {reason}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:  # e.g. the port is taken
        print(f"rag-api: cannot serve on {settings.api_host}:{settings.api_port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        if tracing is not None:
            tracing.shutdown()


if __name__ == "__main__":
    main()
