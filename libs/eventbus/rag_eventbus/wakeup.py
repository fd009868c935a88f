"""Wake a worker the moment a job is inserted (a job queue's doorbell, on the queue's channel).

The callback only sets an `asyncio.Event`; the worker's loop does all database work.
A reconnect sets it too, since notifications sent while disconnected are lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection

from rag_eventbus.listener import Listener
from rag_eventbus.queries import NOTIFY_JOB


def wakeup_listener(dsn: str, channels: Iterable[str], wakeup_event: asyncio.Event) -> Listener:
    """A Listener that sets `wakeup_event` on any notification or reconnection."""
    names = list(channels)

    def ring(_payload: str) -> None:
        wakeup_event.set()

    return Listener(
        dsn,
        {channel: ring for channel in names},
        on_reconnect=wakeup_event.set,
        name="wakeup:" + ",".join(names),
    )


async def notify_job(conn: AsyncConnection[Any], channel: str, job_id: object) -> None:
    """NOTIFY `channel` with the job id; delivered at commit, dropped on rollback."""
    await conn.execute(NOTIFY_JOB, (channel, str(job_id)))
