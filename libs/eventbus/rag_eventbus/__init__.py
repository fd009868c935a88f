"""Postgres LISTEN/NOTIFY event bus.

- `publish`: number and store events inside the caller's transaction (or statement), ring the
  doorbell.
- `listener`: one dedicated LISTEN connection that reconnects by itself.
- `wakeup`: the workers' doorbell, an `asyncio.Event` set by NOTIFY.
- `log`: a user's stream position and epoch, replay after an id, retention pruning.
- `queries`: every statement of the above; `schema`: the tables and the publish function
  (`migrations/*.sql`), applied by the application's migration runner.
"""

from rag_eventbus.listener import Listener, ListenerState
from rag_eventbus.log import EventLog, Replay, ResyncRequired, StreamPosition
from rag_eventbus.publish import (
    REALTIME_CHANNEL,
    Notice,
    decode_notice,
    publish,
    publish_and_number,
    publish_within,
)
from rag_eventbus.types import DeliveredEvent, Publishable
from rag_eventbus.wakeup import notify_job, wakeup_listener

__all__ = [
    "REALTIME_CHANNEL",
    "DeliveredEvent",
    "EventLog",
    "Listener",
    "ListenerState",
    "Notice",
    "Publishable",
    "Replay",
    "ResyncRequired",
    "StreamPosition",
    "decode_notice",
    "notify_job",
    "publish",
    "publish_and_number",
    "publish_within",
    "wakeup_listener",
]
