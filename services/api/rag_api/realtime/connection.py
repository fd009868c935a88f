"""One WebSocket connection: its position in the user's stream, its writer, its heartbeat.

How an event reaches the socket:

- The hub's listener handler calls `offer` (an event that travelled inline in the
  NOTIFY), `announce` (an id range too big for NOTIFY) or `catch_up` (after a listener
  reconnect or a periodic check). These are synchronous and never await: they update
  a few integers and a deque and wake the writer. One slow client therefore never
  delays another, nor the listener.
- One writer task per connection is the only sender after `hello`. It keeps
  `last_sent` and only ever sends `last_sent + 1`: an inline event with id <=
  last_sent is a duplicate and dropped; when the next event is not at hand (a range
  notice, a gap after a reconnect, a resume) it reads the ids it lacks from the event
  log on a pool connection (never on the listener's), in batches, releasing the
  connection before writing to the socket.
- Backlog bound: `behind` = highest live id announced - max(last_sent, hello position).
  When more than `queue_max` (WS_SEND_QUEUE_MAX) live events are waiting, wherever
  they wait (in memory or still in the log), the connection is closed with 4408. A
  resume's replay of older history does not count: it is read in batches as fast as
  the socket takes it.
- Dead-socket rule (hypercorn has no pong timeout, and an ASGI app never sees
  protocol-level pongs): the server sends `{"type":"ping"}` every `heartbeat_seconds`;
  any client frame counts as a sign of life (the answer is `{"type":"pong"}`, or the
  client's own ping). A connection from which nothing arrived for 2 x heartbeat_seconds
  is closed with 4408, like any other client that cannot keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from uuid import UUID

import structlog
from psycopg_pool import AsyncConnectionPool
from starlette.websockets import WebSocket

from rag_api.limits import WS_CLOSE_TOO_MANY_CONNECTIONS
from rag_api.metrics import EVENTS_DELIVERED, WEBSOCKET_CLOSES, close_code_label
from rag_api.realtime import frames
from rag_eventbus import DeliveredEvent, EventLog, ResyncRequired

log = structlog.get_logger("rag_api.realtime")

FILL_BATCH = 200  # events read from the log per query when filling a gap or replaying
CONTROL_MAX = 100  # pongs/errors waiting to be written; more means the client does not read
CLOSE_TIMEOUT = 5.0  # seconds to hand the close frame to a socket that may not drain
RETRY_DELAY = 1.0  # seconds before reading the log again after a database error


class Connection:
    """A user's WebSocket on this replica. Created by the endpoint, fed by the hub."""

    def __init__(
        self,
        websocket: WebSocket,
        user_id: UUID,
        *,
        pool: AsyncConnectionPool[Any],
        queue_max: int,
        heartbeat_seconds: float | None,
        register: Callable[[Connection], bool],
        unregister: Callable[[Connection], None],
    ) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self._pool = pool
        self._queue_max = queue_max
        self._heartbeat = heartbeat_seconds
        self._register = register
        self._unregister = unregister

        self.last_sent = 0  # highest event id written to the socket
        self._baseline: int | None = None  # stream position sent in hello; None before
        self._announced = 0  # highest id seen in live notices
        self._fill_upto = 0  # ids up to this are known to exist and are read from the log
        self._fill_all = False  # read the log to its end (position unknown: DB was down)
        self._pending: deque[DeliveredEvent] = deque()  # inline events, in id order
        self._control: deque[bytes] = deque()  # pong / error / ping / resync frames
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._close: tuple[int, str] | None = None  # what the server closes with
        self._client_closed = False
        self._last_received = time.monotonic()
        self._writer: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    # -- called by the hub, synchronously, from the listener handler ----------------

    def offer(self, event: DeliveredEvent) -> None:
        """A live event that travelled inline in the notification."""
        if self._close is not None or event.id <= self.last_sent:
            return
        self._pending.append(event)
        self._announced = max(self._announced, event.id)
        self._check_backlog()
        self._wake.set()

    def announce(self, last_id: int) -> None:
        """Live events up to `last_id` were committed (too big to travel inline)."""
        if self._close is not None or last_id <= self.last_sent:
            return
        self._announced = max(self._announced, last_id)
        self._fill_upto = max(self._fill_upto, last_id)
        self._check_backlog()
        self._wake.set()

    def catch_up(self, last_id: int | None) -> None:
        """Notifications may have been lost: read the log up to `last_id` (None: to its end)."""
        if self._close is not None:
            return
        if last_id is None:
            self._fill_all = True
        else:
            self._fill_upto = max(self._fill_upto, last_id)
        self._wake.set()

    def request_close(self, code: int, reason: str) -> None:
        """Stop delivering now and close with `code` (first request wins)."""
        if self._close is not None:
            return
        self._close = (code, reason)
        self._unregister(self)
        self._pending.clear()
        self._control.clear()
        if self._writer is not None:
            self._writer.cancel()  # it may be blocked on a socket that does not drain
        self._done.set()

    def _check_backlog(self) -> None:
        if self._baseline is None:
            behind = len(self._pending)  # before hello: only what is held in memory
        else:
            behind = self._announced - max(self.last_sent, self._baseline)
        if behind > self._queue_max:
            log.info("websocket_too_slow", user_id=str(self.user_id), behind=behind)
            self.request_close(frames.CLOSE_TOO_SLOW, "send queue full")

    # -- the connection's life ------------------------------------------------------

    async def serve(self, resume_after: int | None, param_error: str | None = None) -> None:
        """Run until the client leaves or the server closes; the socket is accepted."""
        # FIRST: from now on every live notice reaches us. Refused when the user holds
        # WS_MAX_CONNECTIONS_PER_USER sockets here: closed with 4429 before any frame.
        if not self._register(self):
            log.info("websocket_too_many_connections", user_id=str(self.user_id))
            self._close = (WS_CLOSE_TOO_MANY_CONNECTIONS, "too many connections")
            await self._send_close()
            self.finished.set()
            return
        tasks: list[asyncio.Task[Any]] = []
        try:
            try:
                async with self._pool.connection() as conn:
                    last_id, oldest = await EventLog(conn).stream_position(self.user_id)
            except Exception as exc:
                log.warning("websocket_position_failed", user_id=str(self.user_id), error=str(exc))
                self.request_close(frames.CLOSE_SERVER_ERROR, "database unavailable")
                return
            # Anything committed after `register` and up to last_id is in the table;
            # anything later is notified to us: nothing falls between the two.
            self._baseline = last_id
            self._announced = max(self._announced, last_id)
            await self.websocket.send_text(frames.hello(self.user_id, last_id).decode())
            if param_error is not None:
                self._control.append(frames.error("invalid_parameter", param_error))
            if resume_after is None:
                self.last_sent = last_id  # live only
            elif resume_after > last_id or resume_after + 1 < oldest:
                # Older than the retained history (or ahead of the stream: the client's
                # state cannot be trusted): never a partial replay. Continue live.
                self._control.append(frames.resync_required(oldest))
                self.last_sent = last_id
            else:
                self.last_sent = resume_after
                self._fill_upto = max(self._fill_upto, last_id)
            self._check_backlog()

            self._writer = asyncio.create_task(self._write_loop(), name="ws-writer")
            tasks = [
                self._writer,
                asyncio.create_task(self._read_loop(), name="ws-reader"),
                asyncio.create_task(self._done.wait(), name="ws-done"),
            ]
            if self._heartbeat:
                tasks.append(asyncio.create_task(self._heartbeat_loop(), name="ws-heartbeat"))
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if not task.cancelled() and (failure := task.exception()) is not None:
                    if self._close is None and not self._client_closed:
                        log.warning("websocket_failed", user_id=str(self.user_id), error=repr(failure))
                        self.request_close(frames.CLOSE_SERVER_ERROR, "internal error")
        except asyncio.CancelledError:
            # The server cancels the app when its graceful shutdown times out: say so
            # with 1001 rather than letting hypercorn close with 1011.
            self.request_close(frames.CLOSE_GOING_AWAY, "server shutting down")
            raise
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            self._unregister(self)
            await self._send_close()
            self.finished.set()

    async def _send_close(self) -> None:
        if self._client_closed or self._close is None:
            return
        code, reason = self._close
        WEBSOCKET_CLOSES.labels(code=close_code_label(code)).inc()
        # A client that stopped reading may never drain the socket: do not wait forever.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(code, reason), CLOSE_TIMEOUT)

    async def _read_loop(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self._client_closed = True
                WEBSOCKET_CLOSES.labels(code=close_code_label(message.get("code", 1005))).inc()
                return
            self._last_received = time.monotonic()
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            answer = frames.parse_client_frame(data)
            if answer is not None:
                if len(self._control) >= CONTROL_MAX:
                    self.request_close(frames.CLOSE_TOO_SLOW, "send queue full")
                    return
                self._control.append(answer)
                self._wake.set()

    async def _heartbeat_loop(self) -> None:
        assert self._heartbeat
        while True:
            await asyncio.sleep(self._heartbeat)
            if time.monotonic() - self._last_received >= 2 * self._heartbeat:
                log.info("websocket_heartbeat_timeout", user_id=str(self.user_id))
                self.request_close(frames.CLOSE_TOO_SLOW, "heartbeat timeout")
                return
            if len(self._control) < CONTROL_MAX:
                self._control.append(frames.PING)
                self._wake.set()

    async def _write_loop(self) -> None:
        pending = self._pending
        while True:
            self._wake.clear()
            if self._control:
                await self.websocket.send_text(self._control.popleft().decode())
                continue
            while pending and pending[0].id <= self.last_sent:
                pending.popleft()
            if pending and pending[0].id == self.last_sent + 1:
                await self._send_event(pending.popleft())
                continue
            if self._fill_all:
                await self._fill(None)
                continue
            known = max(self._fill_upto, pending[0].id - 1 if pending else 0)
            if known > self.last_sent:
                await self._fill(known)
                continue
            await self._wake.wait()

    async def _send_event(self, event: DeliveredEvent) -> None:
        await self.websocket.send_text(event.to_frame().decode())
        self.last_sent = event.id
        EVENTS_DELIVERED.inc()

    async def _fill(self, upto: int | None) -> None:
        """Send the next batch of events after last_sent from the log (up to `upto`)."""
        if upto is None:
            self._fill_all = False
        try:
            async with self._pool.connection() as conn:
                events = await EventLog(conn).read_after(
                    self.user_id, self.last_sent, limit=FILL_BATCH, upto=upto
                )
        except ResyncRequired as exc:
            await self._resync_live(exc.oldest_event_id)
            return
        except Exception as exc:  # database down: the gap stays known, retry later
            log.warning("websocket_fill_failed", user_id=str(self.user_id), error=str(exc))
            if upto is None:
                self._fill_all = True
            await asyncio.sleep(RETRY_DELAY)
            return
        if upto is None and len(events) == FILL_BATCH:
            self._fill_all = True  # there may be more
        for event in events:
            if event.id != self.last_sent + 1:
                break  # cannot happen: the log has no holes inside retained history
            await self._send_event(event)
        else:
            if upto is None or events:
                return
        # Ids known to be committed are not in the log: tell the client rather than
        # loop or skip silently.
        log.error("websocket_log_hole", user_id=str(self.user_id), after=self.last_sent, upto=upto)
        await self._resync_live(self.last_sent + 1)

    async def _resync_live(self, oldest_event_id: int) -> None:
        """History the client needs is gone: send resync_required and continue live."""
        position = max(self._announced, self._fill_upto, self.last_sent)
        with contextlib.suppress(Exception):
            async with self._pool.connection() as conn:
                position, oldest_event_id = await EventLog(conn).stream_position(self.user_id)
        await self.websocket.send_text(frames.resync_required(oldest_event_id).decode())
        self.last_sent = max(self.last_sent, position)
        self._baseline = self.last_sent
