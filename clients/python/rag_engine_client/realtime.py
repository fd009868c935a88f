"""`Realtime`: the user's event stream, kept open across every disconnect, each event
delivered once and in order.

The reconnect policy (docs/realtime.md, "Close codes"), in one place (`_after`):

- 4401: ask the token provider once; a different token → reconnect with it at once; the same
  one → stop with `RealtimeUnauthorized` (reconnecting could only be refused again);
- 4408 (too slow, heartbeat timeout): reconnect at once and resume;
- 4429 (too many connections): wait long (`too_many_connections_delay`, equal jitter);
- anything else (1001, 1006, 1011, a refused upgrade, silence, a gap): exponential backoff
  with equal jitter, reset by the next hello.

Every (re)connect resumes with `last_event_id` and `epoch`; duplicates are dropped and a gap
reconnects instead of delivering out of order (`StreamPosition`). The WebSocket comes first;
in "auto" mode `fallback_after` consecutive failures before any hello switch to SSE (and the
same count on SSE switches back).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import httpx

from rag_engine_client.backoff import Backoff
from rag_engine_client.errors import RealtimeUnauthorized
from rag_engine_client.position import StreamPosition, Verdict
from rag_engine_client.tokens import TokenProvider, as_provider, current_token
from rag_engine_client.transports import (
    ABNORMAL,
    TOO_MANY_CONNECTIONS,
    TOO_SLOW,
    UNAUTHORIZED,
    ConnectionEnded,
    SseConnection,
    StreamConnection,
    TransportName,
    WebSocketConnection,
)
from rag_engine_client.types import Event

log = logging.getLogger("rag_engine_client.realtime")

ConnectionState = Literal["connecting", "live", "reconnecting", "stopped"]
TransportChoice = Literal["auto", "websocket", "sse"]
Callback = Callable[..., Any]

# Internal endings (never sent by a server): why the client itself dropped a connection.
_GAP = 4000  # an id above last + 1 arrived
_SILENT = 4001  # nothing arrived for longer than the watchdog allows
_REFRESH = 4002  # SSE: reconnect with the provider's new token
_MALFORMED = 4003  # a hello or resync_required without a usable epoch and id


def _is_position(payload: dict[str, Any]) -> bool:
    """hello carries `epoch` and `last_event_id`, resync_required `epoch` and `oldest_event_id`."""
    event_id = payload.get("last_event_id", payload.get("oldest_event_id"))
    return (
        isinstance(payload.get("epoch"), str)
        and isinstance(event_id, int)
        and not isinstance(event_id, bool)
        and event_id >= 0
    )


async def _call(callback: Callback | None, *args: Any) -> None:
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


class Realtime:
    """The realtime stream of one user, over the WebSocket (SSE as fallback).

    Use either `on_event` (sync or async, called with each event in id order) or iterate:
    `async for event in realtime`. Hooks (each sync or async):

    - `on_ready(hello_payload)`: the client had no last id; every event after hello's
      `last_event_id` will arrive here: load your state over REST now;
    - `on_resync(payload)`: the server cannot resume (history pruned, another epoch): reload
      your state over REST; the next event becomes the new baseline;
    - `on_state(state, detail)`: "connecting", "live", "reconnecting", "stopped".

    `event.redacted` events (a workspace the user left) are delivered too: they only mark
    their id as seen. An exception raised by a hook stops the stream and is raised again
    by `wait()` and the iterator.
    """

    def __init__(
        self,
        base_url: str,
        token: str | TokenProvider,
        *,
        transport: TransportChoice = "auto",
        last_event_id: int | None = None,
        epoch: str | None = None,
        on_event: Callback | None = None,
        on_ready: Callback | None = None,
        on_resync: Callback | None = None,
        on_state: Callback | None = None,
        heartbeat_seconds: float = 25.0,
        sse_keepalive_seconds: float = 15.0,
        silence_factor: float = 2.5,
        backoff: Backoff | None = None,
        fallback_after: int = 3,
        too_many_connections_delay: float = 60.0,
        open_timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_provider = as_provider(token)
        self.choice: TransportChoice = transport
        self.transport: TransportName = "sse" if transport == "sse" else "websocket"
        self.position = StreamPosition(last_event_id, epoch if last_event_id is not None else None)
        self.on_event, self.on_ready, self.on_resync, self.on_state = on_event, on_ready, on_resync, on_state
        self.silence = {
            "websocket": heartbeat_seconds * silence_factor,
            "sse": sse_keepalive_seconds * silence_factor,
        }
        self.backoff = backoff or Backoff()
        self.fallback_after = fallback_after
        self.too_many_connections_delay = too_many_connections_delay
        self.open_timeout = open_timeout
        self.state: ConnectionState = "stopped"
        self.connections = 0  # connections that said hello, for callers that want to know
        self._token: str | None = None  # the token the current connection is authorized with
        self._next_token: str | None = None
        self._failures_before_hello = 0
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(open_timeout, read=None))
        self._conn: StreamConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()

    @property
    def last_event_id(self) -> int | None:
        return self.position.last_event_id

    @property
    def epoch(self) -> str | None:
        return self.position.epoch

    # Life cycle

    def start(self) -> Realtime:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rag-engine-realtime")
        return self

    async def __aenter__(self) -> Realtime:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop for good: no reconnect. Safe to call from a hook (the stream stops after it)."""
        self._closing = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})
        if task is None or task.done():
            self._queue.put_nowait(None)  # a task cancelled before it ran never said so itself
            await self._http.aclose()

    async def wait(self) -> None:
        """Until the stream stops; raises what stopped it (RealtimeUnauthorized, a hook's
        error); returns quietly when it was closed."""
        if self._task is None:
            return
        await asyncio.wait({self._task})
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        self.start()
        while True:
            event = await self._queue.get()
            if event is None:
                break
            yield event
        assert self._task is not None
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]

    # The loop

    def _set_state(self, state: ConnectionState, detail: str = "") -> Awaitable[None]:
        self.state = state
        return _call(self.on_state, state, detail)

    async def _run(self) -> None:
        try:
            while not self._closing:
                delay = await self._connect_once()
                if self._closing:
                    break
                if delay:
                    await asyncio.sleep(delay)
        finally:
            self._closing = True
            self.state = "stopped"
            with contextlib.suppress(Exception):
                await _call(self.on_state, "stopped", "")
            self._queue.put_nowait(None)
            await self._http.aclose()

    async def _connect_once(self) -> float:
        """One connection from open to end; the delay before the next one."""
        try:
            token = self._next_token or await current_token(self.token_provider)
        except Exception as exc:  # the app's provider failed: maybe its auth server is down
            log.warning("token provider failed: %r", exc)
            await self._set_state("reconnecting", f"token provider failed: {exc!r}")
            return self.backoff.next_delay()
        self._next_token = None
        self._token = token
        await self._set_state("connecting", self.transport)
        said_hello = self.connections
        try:
            self._conn = await self._open(token)
            try:
                await self._serve(self._conn)
            finally:
                conn, self._conn = self._conn, None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)
        except ConnectionEnded as end:
            if self._closing:
                return 0
            return await self._after(end, hello=self.connections > said_hello)
        return 0  # closing from a hook

    async def _open(self, token: str) -> StreamConnection:
        params = self.position.resume_params()
        if self.transport == "websocket":
            return await WebSocketConnection.open(self.base_url, token, params, self.open_timeout)
        return await SseConnection.open(self._http, self.base_url, token, params)

    async def _serve(self, conn: StreamConnection) -> None:
        while not self._closing:
            try:
                frame = await conn.receive(self.silence[conn.name])
            except TimeoutError:
                raise ConnectionEnded(_SILENT, "silent for too long") from None
            if frame is not None:
                await self._on_frame(conn, frame)

    async def _after(self, end: ConnectionEnded, hello: bool) -> float:
        """The reconnect policy of the module docstring: the delay before the next attempt."""
        log.info("realtime connection ended: %s %s (%s)", end.code, end.reason, self.transport)
        if not hello and end.code not in (UNAUTHORIZED, TOO_MANY_CONNECTIONS):
            self._count_failure_before_hello()
        if end.code == UNAUTHORIZED:
            return await self._after_unauthorized()
        if end.code in (TOO_SLOW, _REFRESH):
            await self._set_state("reconnecting", f"{end.code} {end.reason}: at once")
            return 0
        if end.code == TOO_MANY_CONNECTIONS:
            delay = self.too_many_connections_delay
            delay = delay / 2 + random.random() * delay / 2
        else:
            delay = self.backoff.next_delay()
        await self._set_state("reconnecting", f"{end.code} {end.reason}: in {delay:.1f} s")
        return delay

    async def _after_unauthorized(self) -> float:
        try:
            fresh = await current_token(self.token_provider)
        except Exception as exc:
            log.warning("token provider failed after 4401: %r", exc)
            return self.backoff.next_delay()
        if fresh == self._token:
            raise RealtimeUnauthorized("the server refused the token and the provider has no other")
        self._next_token = fresh
        await self._set_state("reconnecting", "4401: with a new token")
        return 0

    def _count_failure_before_hello(self) -> None:
        self._failures_before_hello += 1
        if self.choice == "auto" and self._failures_before_hello >= self.fallback_after:
            self.transport = "sse" if self.transport == "websocket" else "websocket"
            self._failures_before_hello = 0
            self.backoff.reset()
            log.info("realtime: switching to %s", self.transport)

    # Frames

    async def _on_frame(self, conn: StreamConnection, frame: dict[str, Any]) -> None:
        event_id = frame.get("id")
        if isinstance(event_id, int) and not isinstance(event_id, bool):
            await self._on_event(conn, frame, event_id)
            return
        kind = frame.get("type")
        payload = frame.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        if kind in ("hello", "resync_required") and not _is_position(payload):
            # Not what any api sends; acting on it would corrupt the resume point.
            raise ConnectionEnded(_MALFORMED, f"malformed {kind} frame")
        if kind == "hello":
            self.connections += 1
            self._failures_before_hello = 0
            self.backoff.reset()
            fresh = self.position.on_hello(payload)
            await self._set_state("live", conn.name)
            if fresh:
                await _call(self.on_ready, payload)
        elif kind == "ping":
            await conn.send({"type": "pong"})
        elif kind == "resync_required":
            self.position.on_resync(payload)
            await _call(self.on_resync, payload)
        elif kind == "token_expiring":
            await self._refresh(conn)
        elif kind == "auth_ok":
            await self._set_state("live", "token refreshed")
        elif kind == "error":
            log.warning("realtime error frame: %s", payload)
        # pong and any frame type this version does not know: nothing to do.

    async def _on_event(self, conn: StreamConnection, frame: dict[str, Any], event_id: int) -> None:
        verdict = self.position.judge(event_id)
        if verdict is Verdict.DUPLICATE:
            return
        if verdict is Verdict.GAP:
            raise ConnectionEnded(_GAP, f"gap: {event_id} after {self.position.last_event_id}")
        event: Event = {
            "id": event_id,
            "type": str(frame.get("type")),
            "payload": frame.get("payload") or {},
            "created_at": str(frame.get("created_at")),
        }
        if self.on_event is not None:
            await _call(self.on_event, event)
        else:
            self._queue.put_nowait(event)

    async def _refresh(self, conn: StreamConnection) -> None:
        """token_expiring: a new token from the provider goes in an auth frame (WebSocket) or a
        reconnect that resumes (SSE); the same token: nothing, until the 4401 at expiry."""
        try:
            fresh = await current_token(self.token_provider)
        except Exception as exc:
            log.warning("token provider failed on token_expiring: %r", exc)
            return
        if fresh == self._token:
            return
        if conn.name == "sse":
            self._next_token = fresh
            raise ConnectionEnded(_REFRESH, "token refresh")
        self._token = fresh
        await conn.send({"type": "auth", "payload": {"token": fresh}})


__all__ = ["ABNORMAL", "ConnectionState", "Realtime", "TransportChoice"]
