"""Probes, the error shape of unknown routes, request ids, start-up failures, database outage."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from typing import Any

import httpx
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rag_devstack.postgres import free_port
from rag_testing.faults import TcpProxy


def test_probes_and_metrics(shared_api: Any) -> None:
    client = shared_api.client()
    health = client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": True, "realtime": True, "broker": "postgres"},
    )
    user = shared_api.user()
    ws = user.create_workspace()
    user.upload(ws["id"], [("m.txt", b"metrics " + uuid.uuid4().bytes.hex().encode())])
    text = client.get("/metrics").text
    assert "rag_api_requests_total{" in text and 'route="/api/workspaces"' in text
    assert 'route="/api/workspaces/{workspace_id:uuid}/documents/upload"' in text
    upload_bytes = [line for line in text.splitlines() if line.startswith("rag_api_upload_bytes_total ")]
    assert upload_bytes and float(upload_bytes[0].split()[1]) > 0
    assert "rag_api_request_seconds_bucket" in text


def test_unknown_routes_and_methods_answer_json(shared_api: Any) -> None:
    user = shared_api.user()
    for method, path, status, code in [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/api/documents/not-a-uuid", 404, "not_found"),
        ("PUT", "/api/workspaces", 405, "method_not_allowed"),
        ("PATCH", f"/api/documents/{uuid.uuid4()}", 405, "method_not_allowed"),
    ]:
        response = user.client.request(method, path)
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == code


def test_request_id_is_echoed_or_generated_and_logged(shared_api: Any) -> None:
    client = shared_api.client()
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces" and len(made.headers["x-request-id"]) == 32
    user = shared_api.user()
    response = user.client.get("/api/workspaces", headers={"X-Request-ID": "trace-me-42"})
    assert response.headers["x-request-id"] == "trace-me-42"
    deadline = time.monotonic() + 5
    while "trace-me-42" not in shared_api.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(line for line in shared_api.log_text().splitlines() if "trace-me-42" in line)
    assert str(user.id) in line and '"status": 200' in line


def _start_failure(api_factory: Any, exit_code: int = 1, **env: str) -> str:
    api = api_factory(wait_ready=False, **env)
    assert api.process.proc.wait(60) == exit_code
    return str(api.log_text())


def test_startup_fails_clearly_without_bucket(api_factory: Any) -> None:
    log = _start_failure(api_factory, S3_BUCKET="no-such-bucket-" + uuid.uuid4().hex[:8])
    assert "rag-api: startup failed: S3 bucket 'no-such-bucket-" in log and "unreachable" in log


def test_startup_fails_clearly_without_database(api_factory: Any) -> None:
    port = free_port()
    log = _start_failure(api_factory, DATABASE_URL=f"postgresql://postgres:s3cret@127.0.0.1:{port}/nothing")
    assert f"rag-api: startup failed: database 127.0.0.1:{port}/nothing is unreachable" in log
    assert "s3cret" not in log


def test_startup_fails_clearly_without_schema(api_factory: Any, empty_database_url: str) -> None:
    log = _start_failure(api_factory, DATABASE_URL=empty_database_url)
    assert "has no schema: run rag-migrate first" in log


def test_bad_configuration_names_the_variable(api_factory: Any) -> None:
    log = _start_failure(api_factory, exit_code=2, MAX_UPLOAD_BYTES="lots")
    assert "configuration error: MAX_UPLOAD_BYTES is invalid" in log


def test_database_outage_is_503_and_recovers(database_url: str, api_factory: Any) -> None:
    target = conninfo_to_dict(database_url)
    proxy = TcpProxy(str(target.get("host", "127.0.0.1")), int(target.get("port", 5432))).start()
    proxied = make_conninfo(database_url, host="127.0.0.1", port=str(proxy.port))
    try:
        api = api_factory(DATABASE_URL=proxied)
        user = api.user()
        assert user.client.get("/api/workspaces").status_code == 200
        proxy.cut()
        with contextlib.suppress(OSError):  # TcpProxy.cut() lets one more accept through
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
        response = user.client.get("/api/workspaces")
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "database_unavailable"
        ready = httpx.get(api.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["database"] is False
        proxy.restore()
        api.wait_ready(timeout=30)
        assert user.client.get("/api/workspaces").status_code == 200
    finally:
        proxy.stop()


def test_sigterm_stops_the_process_cleanly(api_factory: Any) -> None:
    api = api_factory()
    assert api.stop() == 0
    assert "api_stopped" in api.log_text()
