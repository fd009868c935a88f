"""WS_MAX_FRAME_BYTES enforced without buffering past it: a fix of hypercorn's WebSocket reader.

hypercorn (0.18) checks `websocket_max_message_size` only after it has appended a
fragment to the message buffer, and after it sent the 1009 close it keeps reading the
client's data into that same buffer: a client that goes on sending after the close
(one 300 MB frame) grew the process by 300 MB. It also stops reading the events of a
batch at the first oversized fragment, so the client's close reply can be skipped and
the TCP connection stays open until the heartbeat rule closes it.

`install()` replaces `WSStream._handle_events` with the same loop, except that a
fragment that would push the message over the limit is never stored: the server sends
the 1009 close frame and ends the connection at once. An abusive client is owed no
close handshake (RFC 6455 §7.1.1 lets the server close the TCP connection after its
close frame). Called by `rag-api` at start; `tests/adversarial/test_ws_abuse.py` shows
the code and the memory.
"""

from __future__ import annotations

from typing import Any

from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping
from wsproto.frame_protocol import CloseReason

_ORIGINAL = ws_stream.WSStream._handle_events


async def _handle_events(self: Any) -> None:
    for event in self.connection.events():
        if isinstance(event, Message):
            if self.buffer.length + len(event.data) > self.buffer.max_length:
                self.buffer.clear()
                await self._send_wsproto_event(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                await self.send(StreamClosed(stream_id=self.stream_id))
                return
            self.buffer.extend(event)
            if event.message_finished:
                await self.app_put(self.buffer.to_message())
                self.buffer.clear()
        elif isinstance(event, Ping):
            await self._send_wsproto_event(event.response())
        elif isinstance(event, CloseConnection):
            if self.connection.state == ConnectionState.REMOTE_CLOSING:
                await self._send_wsproto_event(event.response())
            await self.send(StreamClosed(stream_id=self.stream_id))


def install() -> None:
    """Idempotent; only for the hypercorn whose loop this one mirrors."""
    if ws_stream.WSStream._handle_events is _ORIGINAL:
        ws_stream.WSStream._handle_events = _handle_events  # type: ignore[method-assign]
