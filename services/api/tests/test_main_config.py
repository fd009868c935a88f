"""How rag-api configures hypercorn (rag_api.main.hypercorn_config)."""

from __future__ import annotations

import subprocess
import sys

from rag_api.main import hypercorn_config
from rag_api.settings import ApiSettings


def settings(**overrides: object) -> ApiSettings:
    return ApiSettings(database_url="postgresql://x/y", s3_bucket="b", jwt_secret="s" * 32, **overrides)  # type: ignore[arg-type]


def test_the_listen_backlog_holds_a_replica_of_reconnecting_clients() -> None:
    """hypercorn's own default (100) made the kernel drop SYNs in a reconnect storm."""
    assert hypercorn_config(settings()).backlog == 4096
    assert hypercorn_config(settings(api_listen_backlog=512)).backlog == 512


def test_permessage_deflate_is_refused_unless_ws_compression_is_set() -> None:
    """The policy hypercorn_config installs; test_ws_compression.py checks real handshakes."""
    from hypercorn.protocol import ws_stream

    from rag_api import ws_compression

    try:
        hypercorn_config(settings())
        assert ws_stream.PerMessageDeflate is ws_compression.DeclinedDeflate  # type: ignore[attr-defined]
        hypercorn_config(settings(ws_compression=True, ws_compression_window_bits=9))
        extension = ws_stream.PerMessageDeflate()  # type: ignore[attr-defined]
        assert isinstance(extension, ws_compression.BoundedDeflate)
        assert extension.client_max_window_bits == 9
    finally:
        ws_compression.uninstall()


def test_the_redis_broker_without_a_redis_url_is_one_clear_line_at_startup() -> None:
    env = {
        "PATH": "/usr/bin",
        "EVENTBUS_BROKER": "redis",
        "DATABASE_URL": "postgresql://x/y",
        "S3_BUCKET": "b",
        "JWT_SECRET": "s" * 32,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rag_api.main"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "configuration error: EVENTBUS_BROKER=redis needs REDIS_URL (e.g. redis://redis:6379/0)"
    )
    assert settings().eventbus_broker == "postgres"  # today's behaviour unless asked
    chosen = settings(eventbus_broker="redis", redis_url="redis://r:6379/0")
    assert (chosen.eventbus_broker, chosen.eventbus_redis_prefix) == ("redis", "rag:rt:")
