"""What a user reads when a document job fails transiently, before a kind adds its own errors."""

from __future__ import annotations

import psycopg

from rag_core.document_jobs import DocumentJobKind
from rag_jobqueue import INTERNAL_ERROR


def test_document_kinds_map_database_outages_and_nothing_else_by_default() -> None:
    kind = DocumentJobKind()
    assert kind.user_message(psycopg.OperationalError("connection to server at 10.1.2.3 failed")) == (
        "The database could not be reached."
    )
    assert kind.user_message(RuntimeError("Traceback ... token=abc")) == INTERNAL_ERROR
