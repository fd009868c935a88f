from __future__ import annotations

import httpx
import pytest

from rag_observability import ProbeServer

pytestmark = pytest.mark.anyio


async def test_probes_answer_health_readiness_and_metrics() -> None:
    ready = False
    server = ProbeServer(0, lambda: ready, host="127.0.0.1")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert (await client.get("/readyz")).status_code == 503
            ready = True
            assert (await client.get("/readyz")).status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and "python_info" in metrics.text
            assert (await client.get("/nope")).status_code == 404
    finally:
        await server.stop()
