"""How a job's failure is classified (permanent errors never retry), and what users read of it.

Users read a job's error (the job row's `last_error`, the document's or the message's
`error`, in REST answers and in events). It must be a sentence written for them, never an
exception's text: an exception raised by an HTTP client or a driver can name internal
hosts, URLs and credentials, or quote an upstream body. So a kind maps the exception
types it knows to sentences (`public_message`), everything else reads "An internal
error occurred", and the runtime appends a reference, the job id, under which the
details are logged (`structlog` context `job_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

INTERNAL_ERROR = "An internal error occurred; it has been logged."

PublicMessages = Mapping[type[BaseException], str]


class PermanentJobError(Exception):
    """The job can never succeed (corrupt or unsupported content): fail it at once.

    The message is shown to users as the document's `error`: write it for them, and never
    put an exception's text in it (log that instead).
    """


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and another took it)."""


def public_message(exc: BaseException, known: PublicMessages) -> str:
    """The sentence `known` gives the most specific class of `exc`, else INTERNAL_ERROR."""
    for cls in type(exc).__mro__:
        sentence = known.get(cls)
        if sentence is not None:
            return sentence
    return INTERNAL_ERROR


def with_reference(sentence: str, job_id: UUID, *, gave_up_after: int | None = None) -> str:
    """`sentence (ref job <id>)`, or `(gave up after N attempts; ref job <id>)` at the last attempt."""
    gave_up = f"gave up after {gave_up_after} attempts; " if gave_up_after is not None else ""
    return f"{sentence} ({gave_up}ref job {job_id})"
