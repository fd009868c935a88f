"""Object keys: built from ids only, never from a user's file name."""

from __future__ import annotations

from uuid import UUID


def document_prefix(workspace_id: UUID, document_id: UUID) -> str:
    return f"workspaces/{workspace_id}/documents/{document_id}/"


def original_key(workspace_id: UUID, document_id: UUID) -> str:
    return document_prefix(workspace_id, document_id) + "original"
