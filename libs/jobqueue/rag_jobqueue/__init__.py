"""The leased Postgres job queue shared by the workers (and the api's answer jobs).

- `queue`: a job table's SQL (claim, rescue, heartbeat, fenced transitions).
- `kind`: the hooks a worker implements; `DocumentJobKind` for document jobs.
- `lease`: the fencing token given to a running job.
- `worker`: the loop (NOTIFY wake-up + poll, capacity, heartbeats, shutdown).
"""

from rag_jobqueue.errors import (
    INTERNAL_ERROR,
    LeaseLost,
    PermanentJobError,
    PublicMessages,
    public_message,
    with_reference,
)
from rag_jobqueue.kind import DocumentJobKind, JobKind, job_event, set_document_status
from rag_jobqueue.lease import Lease
from rag_jobqueue.queue import Job, QueueSpec
from rag_jobqueue.worker import Worker

__all__ = [
    "INTERNAL_ERROR",
    "DocumentJobKind",
    "Job",
    "JobKind",
    "Lease",
    "LeaseLost",
    "PermanentJobError",
    "PublicMessages",
    "QueueSpec",
    "Worker",
    "job_event",
    "public_message",
    "set_document_status",
    "with_reference",
]
