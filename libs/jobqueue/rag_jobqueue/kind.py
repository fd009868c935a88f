"""What a worker does with its jobs: the hooks the runtime calls.

The runtime owns the job row (claim, lease, retry, failure, release); a kind owns
the work and the rows of its own domain around it, and says which events each
transition publishes. The claim's effects are SQL (`claim_effects`), run inside the claim's
own statement; every hook that receives a connection runs inside the runtime's transaction
for its transition. Either way the job's state, the domain rows and the events commit
together. Each statement a hook sends is a round trip (docs/jobs.md, "Round trips").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from psycopg import AsyncConnection

from rag_eventbus import Publishable
from rag_jobqueue.effects import ClaimEffects
from rag_jobqueue.lease import Lease
from rag_jobqueue.queue import Job, QueueSpec

Conn = AsyncConnection[Any]


class JobKind(Protocol):
    queue: QueueSpec
    timeout_seconds: float | None

    async def run(self, job: Job, lease: Lease) -> None:
        """Do the work, then complete with `lease.finish(conn)` in one transaction.

        Raise PermanentJobError for content that can never succeed; any other
        exception is retried with backoff.
        """

    @property
    def claim_effects(self) -> ClaimEffects:
        """What every claim does to the kind's rows and publishes, for the jobs it started
        (a new attempt or a takeover): SQL the claim's statement runs (effects.py)."""

    async def on_retry(self, conn: Conn, job: Job, error: str) -> Sequence[Publishable]: ...

    async def on_failed(self, conn: Conn, job: Job, error: str) -> Sequence[Publishable]: ...

    async def on_released(self, conn: Conn, job: Job) -> Sequence[Publishable]: ...

    def user_message(self, exc: BaseException) -> str:
        """The sentence stored as the job's error for a transient failure: never the
        exception's own text (see `errors.public_message`); the runtime adds the reference."""
