"""The leased Postgres job queue shared by the workers (and the api's answer jobs).

- `queue`: a queue's definition (table, channel, partition column) and its job rows.
- `queries`: every statement on a job table (claim, rescue, heartbeat, fenced transitions).
- `kind`: the hooks a worker implements; `effects`: a claim's effects, as SQL.
- `enqueue`: the one way a job enters a queue.
- `lease`: the fencing token given to a running job.
- `worker`: the loop (NOTIFY wake-up + poll, capacity, heartbeats, shutdown).
"""

from rag_jobqueue.effects import NO_EFFECTS, ClaimEffects
from rag_jobqueue.enqueue import enqueue
from rag_jobqueue.errors import (
    INTERNAL_ERROR,
    LeaseLost,
    PermanentJobError,
    PublicMessages,
    public_message,
    with_reference,
)
from rag_jobqueue.kind import JobKind
from rag_jobqueue.lease import Lease
from rag_jobqueue.queue import Job, QueueSpec
from rag_jobqueue.worker import Worker

__all__ = [
    "INTERNAL_ERROR",
    "NO_EFFECTS",
    "ClaimEffects",
    "Job",
    "JobKind",
    "Lease",
    "LeaseLost",
    "PermanentJobError",
    "PublicMessages",
    "QueueSpec",
    "Worker",
    "enqueue",
    "public_message",
    "with_reference",
]
