"""Coalesce streamed tokens into a few deltas (every `interval` s or `max_chars`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable


async def coalesce(
    pieces: AsyncIterator[str],
    *,
    interval: float = 0.1,
    max_chars: int = 200,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str]:
    """Yield the concatenation of `pieces` in larger deltas; nothing is dropped.

    A delta is flushed when `max_chars` have gathered or `interval` has passed since
    the last flush (checked as pieces arrive), and at the end.
    """
    buffer: list[str] = []
    size = 0
    last = clock()
    async for piece in pieces:
        if not piece:
            continue
        buffer.append(piece)
        size += len(piece)
        now = clock()
        if size >= max_chars or now - last >= interval:
            yield "".join(buffer)
            buffer, size, last = [], 0, now
    if buffer:
        yield "".join(buffer)
