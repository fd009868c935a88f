"""What users read of a failed job: a known sentence or the generic one, plus the job id."""

from __future__ import annotations

import uuid

from rag_jobqueue import INTERNAL_ERROR, public_message, with_reference


class StorageDown(ConnectionError):
    pass


class StorageDownHard(StorageDown):
    pass


def test_the_most_specific_known_class_wins_and_anything_else_is_internal() -> None:
    known = {ConnectionError: "The network failed.", StorageDown: "The file storage could not be reached."}
    assert public_message(StorageDownHard("http://10.0.0.7:9000/bucket said: AccessDenied"), known) == (
        "The file storage could not be reached."
    )
    assert public_message(ConnectionRefusedError("db.internal:5432"), known) == "The network failed."
    secret = "postgresql://rag:hunter2@db.internal/rag"
    assert public_message(ValueError(secret), known) == INTERNAL_ERROR
    assert secret not in public_message(KeyError(secret), {})


def test_the_reference_is_the_job_id() -> None:
    job_id = uuid.UUID("3f2c0000-0000-4000-8000-000000000001")
    assert with_reference("The file is not a valid PDF.", job_id) == (
        "The file is not a valid PDF. (ref job 3f2c0000-0000-4000-8000-000000000001)"
    )
    assert with_reference(INTERNAL_ERROR, job_id, gave_up_after=5) == (
        "An internal error occurred; it has been logged."
        " (gave up after 5 attempts; ref job 3f2c0000-0000-4000-8000-000000000001)"
    )
