"""One realtime connection: its position in the user's stream, its writer, its heartbeat.

The same rules serve the WebSocket (`/api/ws`) and the SSE stream (`/api/events/stream`):
the connection talks to a `Transport` (transport.py, sse.py), which only frames.

How an event reaches the socket:

- The hub's listener handler calls `offer` (an event that travelled inline in the
  NOTIFY), `announce` (an id range too big for NOTIFY) or `catch_up` (after a listener
  reconnect or a periodic check). These are synchronous and never await: they update
  a few integers and a deque and wake the writer. One slow client therefore never
  delays another, nor the listener.
- A writer task is the only sender after `hello`; it exists only while there is something
  to send (started by `_kick`, it ends when nothing is left), so an idle connection holds
  one task, its reader, and three timer handles (heartbeat, token expiring, token expiry). It keeps
  `last_sent` and only ever sends `last_sent + 1`: an inline event with id <=
  last_sent is a duplicate and dropped; when the next event is not at hand (a range
  notice, a gap after a reconnect, a resume) it reads the ids it lacks from the event
  log on a pool connection (never on the listener's), in batches, releasing the
  connection before writing to the socket.
- Backlog bound: `behind` = highest live id announced - max(last_sent, hello position,
  end of what the server owes). When more than `queue_max` (WS_SEND_QUEUE_MAX) live
  events are waiting, wherever they wait (in memory or still in the log), the connection
  is closed with 4408. What the server owes does not count: a resume's replay of older
  history, and events whose notices the server lost (a broker reconnection or refill, a
  jump in the live ids). After either, the connection has REPLAY_GRACE_SECONDS to catch
  up before the bound applies again: the live events arriving meanwhile are no fault of
  the client's. Memory stays bounded all the same: events in memory beyond `queue_max`
  that wait for the log are dropped from memory ("spilled") and read from the log with
  the gap before them.
- Epoch: ids are only comparable within the stream's epoch (rag_eventbus.EventLog). A
  resume from another epoch gets `resync_required` and continues live; every read of the
  log checks the epoch, and when the hub's catch-up (after its listener reconnected, or
  periodically) sees another epoch, the connection resyncs: its ids now belong to another
  stream (a failover to another server, a stream reset). After a listener reconnect the
  hub holds the connection's events until that check ran, so an event of another lineage
  is never sent as the continuation of the old one.
- Live auth: the connection keeps its token's `exp`; `token_expiring` is sent
  TOKEN_EXPIRING_NOTICE seconds before it (at once if less is left) and the connection
  closes with 4401 at expiry, unless an `auth` frame brought a valid token of the same
  user (answered `auth_ok`; the timer restarts). An invalid token or another user's
  closes with 4401 at once.
- Dead-socket rule (hypercorn has no pong timeout, and an ASGI app never sees
  protocol-level pongs): the server sends `{"type":"ping"}` every `heartbeat_seconds`;
  any client frame counts as a sign of life (the answer is `{"type":"pong"}`, or the
  client's own ping). A connection from which nothing arrived for 2 x heartbeat_seconds
  is closed with 4408, like any other client that cannot keep up. A transport without
  client frames (SSE) only gets the heartbeat (a comment there): its dead sockets show
  as a failed write, or a blocked one that the backlog rule closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from psycopg_pool import AsyncConnectionPool

from rag_api.limits import WS_CLOSE_TOO_MANY_CONNECTIONS
from rag_api.metrics import EVENT_DELIVERY_SECONDS, EVENTS_DELIVERED, REALTIME_SPILLS, close_code_label
from rag_api.realtime import frames
from rag_api.realtime.redaction import Redaction
from rag_api.realtime.transport import Transport
from rag_core.tokens import AuthError, TokenClaims
from rag_eventbus import DeliveredEvent, EventLog, ResyncRequired, StreamPosition
from rag_observability.tracing import SpanKind, span

log = structlog.get_logger("rag_api.realtime")

FILL_BATCH = 200  # events read from the log per query when filling a gap or replaying
CONTROL_MAX = 100  # pongs/errors waiting to be written; more means the client does not read
CLOSE_TIMEOUT = 5.0  # seconds to hand the close frame to a socket that may not drain
RETRY_DELAY = 1.0  # seconds before reading the log again after a database error
TOKEN_EXPIRING_NOTICE = 60.0  # seconds before the token's exp that token_expiring is sent
# How long a connection waits for a pool connection to read its position (hello) and its
# replay. In a reconnect storm (a replica restarted, thousands of resumes at once) the pool
# is busy for tens of seconds although Postgres is idle: the connections are held by
# coroutines waiting for the event loop. Closing with 1011 (hello), or retrying a second
# later (replay), after the pool's usual 5 s only fed the storm (docs/benchmarks.md,
# reconnect storm); the client is waiting anyway.
HELLO_CHECKOUT_SECONDS = 60.0
# After a replay begins (a resume, or notices the server lost), how long the live events
# arriving while it is read do not count against WS_SEND_QUEUE_MAX. At thousands of events
# per second to one user, reading back a second's outage takes a healthy client a second or
# two; one that is still more than the bound behind after this is not keeping up.
REPLAY_GRACE_SECONDS = 10.0

Verifier = Callable[[str], TokenClaims]  # raises AuthError for a token that is not valid


class Connection:
    """A user's realtime connection on this replica. Created by an endpoint, fed by the hub."""

    def __init__(
        self,
        transport: Transport,
        claims: TokenClaims,
        *,
        verify: Verifier,
        pool: AsyncConnectionPool[Any],
        queue_max: int,
        heartbeat_seconds: float | None,
        register: Callable[[Connection], bool],
        unregister: Callable[[Connection], None],
    ) -> None:
        self.transport = transport
        self.user_id: UUID = claims.user_id
        self._expires_at = claims.expires_at  # the current token's exp (Unix seconds)
        self._verify = verify
        self._pool = pool
        self._queue_max = queue_max
        self._heartbeat = heartbeat_seconds
        self._register = register
        self._unregister = unregister

        self.last_sent = 0  # highest event id written to the socket
        self._opened_at = datetime.now(UTC)  # events created before it are a replay
        self._epoch = ""  # epoch of the stream last_sent belongs to; "" before hello
        self._held = False  # send no event until the hub's catch-up checked the epoch
        self._stale = False  # the catch-up saw another epoch: verify it, then resync
        self._baseline: int | None = None  # stream position sent in hello; None before
        self._announced = 0  # highest id seen in live notices
        self._fill_upto = 0  # ids up to this are known to exist and are read from the log
        self._fill_all = False  # read the log to its end (position unknown: DB was down)
        # Ids up to this are a replay the server owes, not a backlog of the client's: a
        # resume's history, or events whose notices the server lost (a broker reconnection
        # or refill). The send bound (WS_SEND_QUEUE_MAX) counts only live ids after it.
        self._replay_upto = 0
        # Set while live ids do not count either (REPLAY_GRACE_SECONDS after a replay began).
        self._grace_timer: asyncio.TimerHandle | None = None
        self._pending: deque[DeliveredEvent] = deque()  # inline events, in id order
        self._control: deque[bytes] = deque()  # pong / error / ping / resync frames
        self._serving = False  # hello sent: the writer may run
        self._closed = asyncio.get_running_loop().create_future()  # done once request_close ran
        self._timers: list[asyncio.TimerHandle] = []  # token expiry (notice, close)
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._close: tuple[int, str] | None = None  # what the server closes with
        self._client_closed = False
        self._last_received = time.monotonic()
        self._writer: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()
        self._redaction = Redaction(self.user_id)  # redacts everything until serve loads the memberships

    # -- called by the hub, synchronously, from the listener handler ----------------

    def offer(self, event: DeliveredEvent) -> None:
        """A live event that travelled inline in the notification."""
        if self._close is not None or event.id <= self.last_sent:
            return
        if self._baseline is not None and event.id > self._announced + 1:
            # A jump: the notices of the ids between were lost (the hub's catch-up is on its way).
            self._owe(event.id - 1)
        self._pending.append(event)
        self._announced = max(self._announced, event.id)
        self._check_backlog()
        self._kick()

    def announce(self, last_id: int) -> None:
        """Live events up to `last_id` were committed (too big to travel inline)."""
        if self._close is not None or last_id <= self.last_sent:
            return
        self._announced = max(self._announced, last_id)
        self._fill_upto = max(self._fill_upto, last_id)
        self._check_backlog()
        self._kick()

    def hold(self) -> None:
        """The listener reconnected, maybe to another server: send no event until `catch_up`."""
        self._held = True

    def catch_up(self, position: StreamPosition | None) -> None:
        """Notifications may have been lost: read the log up to the stream's position (None:
        unknown, to its end). Another epoch than ours: the stream is another one, resync."""
        if self._close is not None:
            return
        self._held = False
        if position is None:
            self._fill_all = True  # what it reads was never announced: it does not count
        elif self._epoch and position.epoch != self._epoch:
            self._stale = True
        else:
            if position.last_id > self._announced:  # ids no notice announced: theirs were lost
                self._owe(position.last_id)
            self._fill_upto = max(self._fill_upto, position.last_id)
        self._kick()

    def _owe(self, upto: int) -> None:
        """The server owes the ids up to `upto` (a replay): they, and for
        REPLAY_GRACE_SECONDS the live events arriving while they are read, do not count
        against the backlog bound."""
        self._replay_upto = max(self._replay_upto, upto)
        if self._grace_timer is not None:  # a replay is under way: the grace restarts
            self._grace_timer.cancel()
        self._grace_timer = asyncio.get_running_loop().call_later(REPLAY_GRACE_SECONDS, self._grace_ended)

    def _grace_ended(self) -> None:
        """The bound applies again, whether or not another event arrives to check it."""
        self._grace_timer = None
        self._check_backlog()

    def request_close(self, code: int, reason: str) -> None:
        """Stop delivering now and close with `code` (first request wins)."""
        if self._close is not None:
            return
        self._close = (code, reason)
        self._unregister(self)
        self._pending.clear()
        self._control.clear()
        self._cancel_timers()
        if self._writer is not None:
            self._writer.cancel()  # it may be blocked on a socket that does not drain
        if not self._closed.done():
            self._closed.set_result(None)

    def _kick(self) -> None:
        """Something may be due: start the writer unless it runs (it re-checks everything
        before it ends) or hello is not sent yet (serve kicks once it is)."""
        if self._serving and self._close is None and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write_loop(), name="ws-writer")
            self._writer.add_done_callback(self._writer_ended)

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        if self._writer is task:
            self._writer = None
        if task.cancelled():
            return
        if (failure := task.exception()) is not None:
            self._failed(failure)

    def _failed(self, failure: BaseException) -> None:
        """The reader or the writer raised: close with 1011 unless a close is under way."""
        if self._close is None and not self._client_closed:
            log.warning("realtime_failed", user_id=str(self.user_id), error=repr(failure))
            self.request_close(frames.CLOSE_SERVER_ERROR, "internal error")

    def _check_backlog(self) -> None:
        pending = self._pending
        if self._baseline is None:
            behind = len(pending)  # before hello: only what is held in memory
        elif self._grace_timer is not None:
            behind = 0  # catching up with a replay: live ids do not count yet
        else:
            # Live ids waiting, in memory or in the log.
            behind = self._announced - max(self.last_sent, self._baseline, self._replay_upto)
        if behind > self._queue_max:
            log.info("realtime_too_slow", user_id=str(self.user_id), behind=behind)
            self.request_close(frames.CLOSE_TOO_SLOW, "send queue full")
        elif len(pending) > self._queue_max:
            # Within the bound, so most of this waits behind a replay: keep none of it in
            # memory; the writer reads it from the log with the replay (`_fill`).
            self._fill_upto = max(self._fill_upto, pending[-1].id)
            pending.clear()
            REALTIME_SPILLS.inc()

    # -- the connection's life ------------------------------------------------------

    async def serve(
        self, resume_after: int | None, epoch: str | None = None, param_error: str | None = None
    ) -> None:
        """Run until the client leaves or the server closes; the socket is accepted.

        `resume_after`: the client's last id (None: live only); `epoch`: the epoch that id
        belongs to (None: the client did not say, and is trusted as before epochs)."""
        # FIRST: from now on every live notice reaches us. Refused when the user holds
        # WS_MAX_CONNECTIONS_PER_USER sockets here: closed with 4429 before any frame.
        if not self._register(self):
            log.info("realtime_too_many_connections", user_id=str(self.user_id))
            self._close = (WS_CLOSE_TOO_MANY_CONNECTIONS, "too many connections")
            await self._send_close()
            self.finished.set()
            return
        tasks: list[asyncio.Task[Any]] = []
        try:
            try:
                async with self._pool.connection(timeout=HELLO_CHECKOUT_SECONDS) as conn:
                    position = await EventLog(conn).stream_position(self.user_id)
                    self._redaction = await Redaction.load(conn, self.user_id, as_of=position.last_id)
            except Exception as exc:
                log.warning("realtime_position_failed", user_id=str(self.user_id), error=str(exc))
                self.request_close(frames.CLOSE_SERVER_ERROR, "database unavailable")
                return
            # Anything committed after `register` and up to last_id is in the table;
            # anything later is notified to us: nothing falls between the two.
            last_id, self._epoch = position.last_id, position.epoch
            self._baseline = last_id
            self._announced = max(self._announced, last_id)
            await self.transport.send_control(frames.hello(self.user_id, position.epoch, last_id))
            if param_error is not None:
                self._control.append(frames.error("invalid_parameter", param_error))
            if resume_after is None:
                self.last_sent = last_id  # live only
            elif (
                (epoch is not None and epoch != position.epoch)
                or resume_after > last_id
                or resume_after + 1 < position.oldest_id
            ):
                # Another stream's ids, older than the retained history, or ahead of the
                # stream (the client's state cannot be trusted): never a partial or foreign
                # replay. Continue live.
                self._control.append(frames.resync_required(position.oldest_id, position.epoch))
                self.last_sent = last_id
            else:
                self.last_sent = resume_after
                self._fill_upto = max(self._fill_upto, last_id)
                if last_id > resume_after:
                    self._owe(last_id)
            self._check_backlog()
            if self._close is not None:
                return
            self._serving = True
            self._schedule_expiry()
            if self._heartbeat:
                self._heartbeat_timer = asyncio.get_running_loop().call_later(
                    self._heartbeat, self._heartbeat_tick
                )
            self._kick()
            reader = asyncio.create_task(self._read_loop(), name="ws-reader")
            tasks = [reader]
            await asyncio.wait([reader, self._closed], return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not reader.cancelled() and (failure := reader.exception()) is not None:
                self._failed(failure)
        except asyncio.CancelledError:
            # The server cancels the app when its graceful shutdown times out: say so
            # with 1001 rather than letting hypercorn close with 1011.
            self.request_close(frames.CLOSE_GOING_AWAY, "server shutting down")
            raise
        finally:
            self._serving = False
            self._cancel_timers()
            if self._writer is not None:
                tasks.append(self._writer)
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
        self.transport.closes.labels(code=close_code_label(code)).inc()
        # A client that stopped reading may never drain the socket: do not wait forever.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.transport.close(code, reason), CLOSE_TIMEOUT)

    async def _read_loop(self) -> None:
        while True:
            data = await self.transport.receive()
            if data is None:
                self._client_closed = True
                return
            self._last_received = time.monotonic()
            answer = frames.parse_client_frame(data)
            if isinstance(answer, frames.Auth):
                answer = self._reauthenticate(answer.token)
                if answer is None:
                    return  # closing with 4401
            if answer is not None and not self._push_control(answer):
                return

    def _push_control(self, frame: bytes) -> bool:
        """Queue a control frame; False (and close 4408) when the client reads none of them."""
        if len(self._control) >= CONTROL_MAX:
            self.request_close(frames.CLOSE_TOO_SLOW, "send queue full")
            return False
        self._control.append(frame)
        self._kick()
        return True

    def _reauthenticate(self, token: str) -> bytes | None:
        """An auth frame: the answer (auth_ok), or None when the connection closes with 4401."""
        try:
            claims = self._verify(token)
        except AuthError as exc:
            log.info("realtime_reauth_refused", user_id=str(self.user_id), reason=str(exc))
            self.request_close(frames.CLOSE_UNAUTHORIZED, "invalid token")
            return None
        if claims.user_id != self.user_id:
            log.info("realtime_reauth_refused", user_id=str(self.user_id), reason="another user")
            self.request_close(frames.CLOSE_UNAUTHORIZED, "token of another user")
            return None
        self._expires_at = claims.expires_at
        self._schedule_expiry()  # the timer restarts from the new exp
        return frames.auth_ok(claims.expires_at)

    # -- timers (callbacks on the loop, not tasks: an idle connection stays cheap) -----

    def _schedule_expiry(self) -> None:
        """token_expiring TOKEN_EXPIRING_NOTICE s before the token's exp (at once if less is
        left), then 4401 at it; a refresh reschedules both."""
        self._cancel_expiry()
        loop = asyncio.get_running_loop()
        expires_at = self._expires_at
        notice_in = max(0.0, expires_at - TOKEN_EXPIRING_NOTICE - time.time())
        self._timers = [
            loop.call_later(notice_in, self._push_control, frames.token_expiring(expires_at)),
            loop.call_later(max(notice_in, expires_at - time.time()), self._token_expired),
        ]

    def _token_expired(self) -> None:
        log.info("realtime_token_expired", user_id=str(self.user_id))
        self.request_close(frames.CLOSE_UNAUTHORIZED, "token expired")

    def _heartbeat_tick(self) -> None:
        assert self._heartbeat
        self._heartbeat_timer = None
        silent = time.monotonic() - self._last_received >= 2 * self._heartbeat
        if self.transport.client_frames and silent:
            log.info("realtime_heartbeat_timeout", user_id=str(self.user_id))
            self.request_close(frames.CLOSE_TOO_SLOW, "heartbeat timeout")
            return
        if self._push_control(frames.PING):
            self._heartbeat_timer = asyncio.get_running_loop().call_later(
                self._heartbeat, self._heartbeat_tick
            )

    def _cancel_expiry(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def _cancel_timers(self) -> None:
        self._cancel_expiry()
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
            self._heartbeat_timer = None

    async def _write_loop(self) -> None:
        """Send what is due, in order, until nothing is: then end (`_kick` starts it again).
        Nothing changes between the last check and the return (no await), so nothing is missed."""
        pending = self._pending
        while True:
            if self._control:
                await self.transport.send_control(self._control.popleft())
                continue
            if self._held:
                return  # catch_up kicks
            if self._stale:
                await self._check_epoch()
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
            return

    async def _send_event(self, event: DeliveredEvent) -> None:
        event = self._redaction.apply(event)  # every event frame passes here, in id order
        if event.traceparent is None:  # tracing off (or published outside a trace): no span
            await self.transport.send_event(event)
        else:
            # The frame's span, in the trace the event was published in (docs/observability.md).
            with span(
                "realtime send",
                parent=event.traceparent,
                kind=SpanKind.PRODUCER,
                attributes={"event.id": event.id, "event.type": event.type, "user.id": str(self.user_id)},
            ):
                await self.transport.send_event(event)
        self.last_sent = event.id
        EVENTS_DELIVERED.inc()
        if event.created_at >= self._opened_at:  # live, not the replay of a resume
            EVENT_DELIVERY_SECONDS.observe(max(0.0, (datetime.now(UTC) - event.created_at).total_seconds()))

    async def _fill(self, upto: int | None) -> None:
        """Send the next batch of events after last_sent from the log (up to `upto`)."""
        if upto is None:
            self._fill_all = False
        try:
            # As long as the hello's wait: in a storm the replay right after it meets the same busy pool.
            async with self._pool.connection(timeout=HELLO_CHECKOUT_SECONDS) as conn:
                replay = await EventLog(conn).read_after(
                    self.user_id, self.last_sent, limit=FILL_BATCH, upto=upto, epoch=self._epoch
                )
        except ResyncRequired as exc:
            await self._resync_live(exc.position)
            return
        except Exception as exc:  # database down: the gap stays known, retry later
            log.warning("realtime_fill_failed", user_id=str(self.user_id), error=str(exc))
            if upto is None:
                self._fill_all = True
            await asyncio.sleep(RETRY_DELAY)
            return
        events = replay.events
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
        log.error("realtime_log_hole", user_id=str(self.user_id), after=self.last_sent, upto=upto)
        position = max(self._announced, self._fill_upto, self.last_sent)
        await self._resync_live(StreamPosition(position, self.last_sent + 1, self._epoch))

    async def _check_epoch(self) -> None:
        """The hub saw another epoch: re-read the position (it may have been a passing state)."""
        try:
            async with self._pool.connection() as conn:
                position = await EventLog(conn).stream_position(self.user_id)
        except Exception as exc:  # stays stale: retried
            log.warning("realtime_position_failed", user_id=str(self.user_id), error=str(exc))
            await asyncio.sleep(RETRY_DELAY)
            return
        self._stale = False
        if position.epoch != self._epoch:
            await self._resync_live(position)
        else:
            self._fill_upto = max(self._fill_upto, position.last_id)

    async def _resync_live(self, known: StreamPosition) -> None:
        """The client's history is gone, or its stream is another one now (another epoch):
        send resync_required and continue live from the stream's position (`known` when it
        cannot be read again)."""
        position = known
        with contextlib.suppress(Exception):
            async with self._pool.connection() as conn:
                position = await EventLog(conn).stream_position(self.user_id)
                self._redaction = await Redaction.load(conn, self.user_id, as_of=position.last_id)
        await self.transport.send_control(frames.resync_required(position.oldest_id, position.epoch))
        if position.epoch == self._epoch:
            self.last_sent = max(self.last_sent, position.last_id)
        else:
            # Ids of the old epoch mean nothing now, those in memory included: continue
            # from the new stream's position and read its log to the end once, which
            # brings whatever of the new stream was waiting in memory.
            self._epoch = position.epoch
            self._pending.clear()
            self.last_sent = self._announced = self._fill_upto = position.last_id
            self._fill_all = True
        self._baseline = self.last_sent
