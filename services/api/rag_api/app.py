"""The Starlette application: lifespan (database, bucket, realtime hub), routes, error shapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles

from rag_api.answering.kind import AnswerKind
from rag_api.answering.providers import build_provider
from rag_api.api_docs import docs_routes
from rag_api.conversations import create_conversation, list_conversations, list_messages, post_message
from rag_api.documents import delete_document, document_jobs, get_document, list_documents, reprocess_document
from rag_api.errors import ApiError, error_response
from rag_api.limits import database_timeout, too_many_uploads
from rag_api.middleware import RequestContextMiddleware
from rag_api.probes import healthz, metrics, readyz
from rag_api.realtime import RealtimeHub, event_stream_endpoint, events_endpoint, websocket_endpoint
from rag_api.resources import no_route_under, resource
from rag_api.search import search_endpoint
from rag_api.settings import ApiSettings
from rag_api.sweeper import run_sweeper_of
from rag_api.uploads import upload_documents
from rag_api.user_slots import UserSlots
from rag_api.workspaces import add_member, create_workspace, list_workspaces, remove_member
from rag_core.event_loop import loop_name
from rag_embedding import build_embedder
from rag_jobqueue import Worker
from rag_observability import configure_logging
from rag_storage import ObjectStore, StorageError

log = structlog.get_logger("rag_api.app")

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
POOL_CHECKOUT_TIMEOUT = 5.0  # a request waiting longer for a connection gets 503
STARTUP_DB_TIMEOUT = 15.0

WS_ID = "{workspace_id:uuid}"
DOC_ID = "{document_id:uuid}"
CONVERSATION_ID = "{conversation_id:uuid}"
STATIC_DIR = Path(__file__).parent / "static"


class StartupError(Exception):
    """A dependency is missing at start: the process must not serve."""


def routes() -> list[BaseRoute]:
    """One `resource` per path (rag_api.resources: a 405 lists exactly the path's methods)."""
    return [
        resource("/healthz", GET=healthz),
        resource("/readyz", GET=readyz),
        resource("/metrics", GET=metrics),
        resource("/api/workspaces", GET=list_workspaces, POST=create_workspace),
        resource(f"/api/workspaces/{WS_ID}/members", POST=add_member),
        resource(f"/api/workspaces/{WS_ID}/members/{{user_id:uuid}}", DELETE=remove_member),
        resource(f"/api/workspaces/{WS_ID}/documents/upload", POST=upload_documents),
        resource(f"/api/workspaces/{WS_ID}/documents", GET=list_documents),
        resource(f"/api/documents/{DOC_ID}", GET=get_document, DELETE=delete_document),
        resource(f"/api/documents/{DOC_ID}/jobs", GET=document_jobs),
        resource(f"/api/documents/{DOC_ID}/reprocess", POST=reprocess_document),
        resource(f"/api/workspaces/{WS_ID}/search", GET=search_endpoint),
        resource(f"/api/workspaces/{WS_ID}/conversations", GET=list_conversations, POST=create_conversation),
        resource(f"/api/conversations/{CONVERSATION_ID}/messages", GET=list_messages, POST=post_message),
        resource("/api/events", GET=events_endpoint),
        resource("/api/events/stream", GET=event_stream_endpoint),
        WebSocketRoute("/api/ws", websocket_endpoint),
        no_route_under("/api"),  # any other /api path: 404 for every method, never the console's 405
        # GET /openapi.json and the Swagger UI page /docs, its assets served from the wheel.
        *docs_routes(),
        # The console page (static, no build step); last, so that every route above wins.
        # follow_symlink: static/rag-client.js is a symlink to clients/js/src/index.js (one copy).
        Mount("/", app=StaticFiles(directory=STATIC_DIR, html=True, follow_symlink=True), name="console"),
    ]


def _where(dsn: str) -> str:
    """host:port/dbname of a DSN, for messages (never the password)."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable DATABASE_URL)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


async def _open_pool(pool: AsyncConnectionPool[Any], dsn: str) -> None:
    try:
        # One direct attempt first: a refused connection fails at once with psycopg's reason,
        # where the pool would retry quietly until its timeout.
        probe = await psycopg.AsyncConnection.connect(dsn, connect_timeout=int(STARTUP_DB_TIMEOUT))
        await probe.close()
        await pool.open(wait=True, timeout=STARTUP_DB_TIMEOUT)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT to_regclass('public.documents') IS NOT NULL")
            row = await cur.fetchone()
    except (PoolTimeout, psycopg.Error) as exc:
        raise StartupError(f"database {_where(dsn)} is unreachable: {str(exc).strip()}") from None
    if not row or not row[0]:
        raise StartupError(f"database {_where(dsn)} has no schema: run rag-migrate first")


async def _check_bucket(store: ObjectStore, settings: ApiSettings) -> None:
    try:
        await store.check_bucket()
    except StorageError as exc:
        endpoint = settings.s3_endpoint_url or "AWS S3"
        raise StartupError(f"S3 bucket '{settings.s3_bucket}' at {endpoint} is unreachable: {exc}") from None


def create_app(settings: ApiSettings) -> Starlette:
    embedder = build_embedder(settings)
    provider = build_provider(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_format, service="api")
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.database_url,
            open=False,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE + settings.answer_concurrency,
            timeout=POOL_CHECKOUT_TIMEOUT,
            kwargs={"autocommit": True, "options": statement_timeout_option(settings)},
            check=AsyncConnectionPool.check_connection,  # a restart of Postgres is survived
            name="rag-api",
        )
        try:
            await _open_pool(pool, settings.database_url)
            async with ObjectStore(settings) as store:
                await _check_bucket(store, settings)
                hub = RealtimeHub(pool=pool, listen_dsn=settings.listen_dsn, settings=settings)
                app.state.pool, app.state.store, app.state.hub = pool, store, hub
                await hub.start()
                # Answer jobs run here, on the shared job runtime (I/O-bound: no separate worker).
                answers = Worker(
                    AnswerKind(pool, embedder, provider),
                    pool,
                    settings.listen_dsn,
                    settings,
                    concurrency=settings.answer_concurrency,
                )
                stop_answers = asyncio.Event()
                answering = asyncio.create_task(answers.run(stop_answers), name="answer-worker")
                sweeping = asyncio.create_task(run_sweeper_of(pool, store, settings), name="orphan-sweeper")
                log.info("api_started", host=settings.api_host, port=settings.api_port, loop=loop_name())
                try:
                    yield
                finally:
                    sweeping.cancel()
                    stop_answers.set()
                    await answering
                    await asyncio.gather(sweeping, return_exceptions=True)
                    await hub.stop()
        except StartupError as exc:
            app.state.startup_error = str(exc)
            log.error("startup_failed", reason=str(exc))
            raise
        finally:
            await pool.close()
            log.info("api_stopped")

    app = Starlette(
        routes=routes(),
        # A request body idle for REQUEST_READ_TIMEOUT_SECONDS: 408 and the connection closed.
        middleware=[
            Middleware(RequestContextMiddleware, body_idle_seconds=settings.request_read_timeout_seconds)
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            # QueryCanceled is an OperationalError: Starlette picks the closest class in the MRO.
            psycopg.errors.QueryCanceled: _database_timeout,
            psycopg.OperationalError: _database_unavailable,
            PoolTimeout: _database_unavailable,
            StorageError: _storage_unavailable,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.embedder = embedder
    app.state.upload_slots = UserSlots(settings.max_concurrent_uploads_per_user, too_many_uploads)
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return Response(
        orjson.dumps(exc.body()),
        status_code=exc.status,
        media_type="application/json",
        headers={**exc.headers, **({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {})},
    )


_HTTP_CODES = {
    404: ("not_found", "No route matches this path."),
    405: ("method_not_allowed", "This method is not allowed on this path."),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    response = error_response(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def statement_timeout_option(settings: ApiSettings) -> str:
    """libpq `options` giving every pool connection DB_STATEMENT_TIMEOUT_SECONDS.

    Per statement, so a long answer job (many short statements) is unaffected; the
    realtime LISTEN connection is not from the pool and never times out.
    """
    return f"-c statement_timeout={max(1, round(settings.db_statement_timeout_seconds * 1000))}"


async def _database_timeout(request: Request, exc: Exception) -> Response:
    """A statement cancelled by statement_timeout (or a lock waited on that long)."""
    log.warning("database_timeout", error=str(exc))
    settings: ApiSettings = request.app.state.settings
    return await _api_error(request, database_timeout(settings.db_statement_timeout_seconds))


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database_unavailable", error=str(exc))
    return error_response(503, "database_unavailable", "The database is unavailable; try again later.")


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("storage_unavailable", error=str(exc))
    return error_response(503, "storage_unavailable", "Object storage is unavailable; try again later.")
