"""The realtime event contract (docs/contract.md §5) as pydantic models.

Producers build one of the payload models and wrap it in `Event`; the bus stores
`payload` as JSON and delivers `{"id", "type", "payload", "created_at"}` frames
(`rag_eventbus.DeliveredEvent`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator

EventType = Literal[
    "document.created",
    "document.status_updated",
    "document.deleted",
    "job.status_updated",
    "message.created",
    "message.status_updated",
    "workspace.member_added",
    "workspace.member_removed",
]
DocumentStatus = Literal["queued", "parsing", "parsed", "ingesting", "ingested", "error"]
JobStatus = Literal["queued", "running", "success", "failed"]
JobType = Literal["parse", "ingest"]
MessageStatus = Literal["pending", "streaming", "completed", "failed"]
MessageRole = Literal["user", "assistant"]
MemberRole = Literal["owner", "member"]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    workspace_id: UUID


class DocumentCreated(_Payload):
    document_id: UUID
    filename: str
    status: DocumentStatus


class DocumentStatusUpdated(_Payload):
    document_id: UUID
    status: DocumentStatus
    error: str | None = None


class DocumentDeleted(_Payload):
    document_id: UUID


class JobProgress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    done: int
    total: int


class JobStatusUpdated(_Payload):
    job_id: UUID
    job_type: JobType
    document_id: UUID
    status: JobStatus
    attempt: int
    max_attempts: int
    error: str | None = None
    run_at: datetime | None = None
    progress: JobProgress | None = None


class Citation(BaseModel):
    """A cited passage and where it is: `page` (its first page, None for formats without
    pages) and `char_start`/`char_end` (its range in the document's parsed text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    document_id: UUID
    chunk_id: int
    filename: str
    ordinal: int
    page: int | None
    char_start: int
    char_end: int


class MessageCreated(_Payload):
    message_id: UUID
    conversation_id: UUID
    role: MessageRole
    status: MessageStatus
    content: str


class MessageStatusUpdated(_Payload):
    """A `streaming` event carries only the new text (`delta`) and where it starts in the
    full text (`offset`, in Unicode code points, as Python and Postgres count): sending the
    text so far on every event made a long answer cost O(n²) stored and sent bytes. Any
    other status carries the whole `content` (empty for `pending` and `failed`), `completed`
    its `citations`. A `streaming` event at offset 0 with an empty delta restarts the text.
    """

    message_id: UUID
    conversation_id: UUID
    status: MessageStatus
    content: str | None = None
    delta: str | None = None
    offset: int | None = None
    citations: list[Citation] | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _delta_or_content(self) -> MessageStatusUpdated:
        streaming = self.status == "streaming"
        if streaming != (self.delta is not None and self.offset is not None) or streaming == (
            self.content is not None
        ):
            raise ValueError("a streaming event carries delta and offset, any other one its content")
        return self


class _MembershipChange(_Payload):
    user_id: UUID
    role: MemberRole


class WorkspaceMemberAdded(_MembershipChange):
    """`user_id` joined the workspace (also its creator, as owner): every member, them
    included, hears of it, and a connection of theirs starts delivering its events."""


class WorkspaceMemberRemoved(_MembershipChange):
    """`user_id` left or was removed: published before the row goes, so they hear of it
    too; from then on their connections redact the workspace's events."""


Payload = (
    DocumentCreated
    | DocumentStatusUpdated
    | DocumentDeleted
    | JobStatusUpdated
    | MessageCreated
    | MessageStatusUpdated
    | WorkspaceMemberAdded
    | WorkspaceMemberRemoved
)

PAYLOAD_TYPES: dict[EventType, type[_Payload]] = {
    "document.created": DocumentCreated,
    "document.status_updated": DocumentStatusUpdated,
    "document.deleted": DocumentDeleted,
    "job.status_updated": JobStatusUpdated,
    "message.created": MessageCreated,
    "message.status_updated": MessageStatusUpdated,
    "workspace.member_added": WorkspaceMemberAdded,
    "workspace.member_removed": WorkspaceMemberRemoved,
}
_TYPE_OF: dict[type[_Payload], EventType] = {v: k for k, v in PAYLOAD_TYPES.items()}


class Event(BaseModel):
    """An event before it is published: a type and its payload, not yet numbered."""

    model_config = ConfigDict(frozen=True)
    type: EventType
    payload: dict[str, Any]

    @classmethod
    def of(cls, payload: Payload) -> Event:
        """Wrap a typed payload; optional fields left unset (e.g. `progress`) are omitted."""
        body = payload.model_dump(mode="json", exclude_none=False)
        if isinstance(payload, JobStatusUpdated) and payload.progress is None:
            body.pop("progress")
        if isinstance(payload, MessageStatusUpdated):
            for key in ("content", "delta", "offset", "citations"):
                if body[key] is None:
                    body.pop(key)
            if payload.status == "streaming":
                body.pop("error")
        return cls(type=_TYPE_OF[type(payload)], payload=body)

    @property
    def audience(self) -> UUID:
        """Who the bus delivers it to: its workspace (every member, migration 0007)."""
        return UUID(str(self.payload["workspace_id"]))
