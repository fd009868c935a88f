"""At most N operations of one user at once in this process (MAX_CONCURRENT_UPLOADS_PER_USER).

Per process on purpose: what an upload costs (an S3 multipart buffer, a body stream, a
pool checkout per file) is a cost of the process that runs it, and a counter in memory
is free to check before a byte of the body is read. asyncio runs one handler at a time
between awaits, so the check and the increment cannot interleave.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from rag_api.errors import ApiError


class UserSlots:
    def __init__(self, limit: int, refusal: Callable[[int], ApiError]) -> None:
        self.limit = limit
        self._refusal = refusal  # builds the error to raise, given the limit
        self._held: dict[UUID, int] = {}

    def held(self, user_id: UUID) -> int:
        return self._held.get(user_id, 0)

    @contextmanager
    def hold(self, user_id: UUID) -> Iterator[None]:
        """One slot of `user_id` for the block; raises the refusal when all are taken."""
        held = self._held.get(user_id, 0)
        if held >= self.limit:
            raise self._refusal(self.limit)
        self._held[user_id] = held + 1
        try:
            yield
        finally:
            left = self._held[user_id] - 1
            if left:
                self._held[user_id] = left
            else:
                del self._held[user_id]  # idle users cost no memory
