"""The object store's layout: every key is built from ids only, never from a user's file name.

One home, because the api writes originals, the parse worker writes parsed text next to them,
and the api's document deletion and orphan sweeper remove a document's whole prefix.
"""

from __future__ import annotations

from uuid import UUID


def document_prefix(workspace_id: UUID, document_id: UUID) -> str:
    return f"workspaces/{workspace_id}/documents/{document_id}/"


def original_key(workspace_id: UUID, document_id: UUID) -> str:
    return document_prefix(workspace_id, document_id) + "original"


def parsed_key(workspace_id: UUID, document_id: UUID) -> str:
    """Where the parse worker writes the document's extracted text (UTF-8)."""
    return document_prefix(workspace_id, document_id) + "parsed.txt"
