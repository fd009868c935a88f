"""GET /healthz (the process runs), /readyz (database + realtime broker connection), /metrics."""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from rag_api.deps import pool_of
from rag_api.responses import json_response

log = structlog.get_logger("rag_api.probes")

READY_DB_TIMEOUT = 2.0


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _database_answers(request: Request) -> bool:
    async def select_one() -> None:
        async with pool_of(request).connection(timeout=READY_DB_TIMEOUT) as conn:
            await conn.execute("SELECT 1")

    try:
        await asyncio.wait_for(select_one(), READY_DB_TIMEOUT)
    except Exception as exc:  # any failure means "not ready", never a 500
        log.debug("readyz_database_failed", error=str(exc))
        return False
    return True


async def readyz(request: Request) -> Response:
    hub = getattr(request.app.state, "hub", None)
    realtime = bool(hub is not None and hub.ready)
    database = await _database_answers(request)
    ready = database and realtime
    body = {
        "status": "ready" if ready else "unavailable",
        "database": database,
        "realtime": realtime,
        # Which engine brings the realtime notices (EVENTBUS_BROKER); `realtime` is its connection.
        "broker": hub.broker.name if hub is not None else None,
    }
    return json_response(body, status=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
