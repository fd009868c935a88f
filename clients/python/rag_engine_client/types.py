"""The shapes of docs/contract.md §4 and §5, as TypedDicts: the JSON as the API sends it,
typed for the caller's checker without copying it into other objects."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Role = Literal["owner", "member"]
DocumentStatus = Literal["queued", "parsing", "parsed", "ingesting", "ingested", "error"]
JobStatus = Literal["queued", "running", "success", "failed"]
MessageStatus = Literal["pending", "streaming", "completed", "failed"]


class Workspace(TypedDict):
    id: str
    name: str
    role: Role
    created_at: str


class Member(TypedDict):
    workspace_id: str
    user_id: str
    role: Role


class Document(TypedDict):
    id: str
    workspace_id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    status: DocumentStatus
    error: str | None
    chunk_count: int
    created_at: str
    updated_at: str
    parse_job_id: NotRequired[str]
    duplicate: NotRequired[bool]


class UploadRefusal(TypedDict):
    filename: str
    code: str
    message: str


class UploadResult(TypedDict):
    documents: list[Document]
    errors: list[UploadRefusal]


class DocumentPage(TypedDict):
    items: list[Document]
    next_cursor: str | None


class Job(TypedDict):
    id: str
    job_type: Literal["parse", "ingest"]
    document_id: str
    status: JobStatus
    attempt: int
    max_attempts: int
    error: str | None
    run_at: str
    created_at: str
    started_at: str | None
    finished_at: str | None


class SearchHit(TypedDict):
    chunk_id: int
    document_id: str
    filename: str
    ordinal: int
    text: str
    score: float
    page: int | None  # the passage's first page; None for a document without pages
    char_start: int  # the passage's range in the document's parsed text (code points)
    char_end: int


class SearchFilters(TypedDict, total=False):
    """A search's filters and a question's (docs/api.md "Search"): `created_after` inclusive,
    `created_before` exclusive, both RFC 3339 with an offset."""

    document_id: list[str]
    content_type: list[str]
    created_after: str
    created_before: str


class Conversation(TypedDict):
    id: str
    workspace_id: str
    title: str
    created_by: str
    created_at: str


class Citation(TypedDict):
    document_id: str
    chunk_id: int
    filename: str
    ordinal: int
    page: int | None  # the passage's first page; None for a document without pages
    char_start: int  # the passage's range in the document's parsed text (code points)
    char_end: int


class Message(TypedDict):
    id: str
    conversation_id: str
    workspace_id: str
    role: Literal["user", "assistant"]
    status: MessageStatus
    content: str
    citations: list[Citation]
    error: str | None
    created_at: str
    updated_at: str


class PostedMessage(TypedDict):
    message: Message
    reply: Message


class Event(TypedDict):
    """An event frame (docs/contract.md §5): `id` is consecutive per user within one epoch."""

    id: int
    type: str
    payload: dict[str, Any]
    created_at: str


class EventsPage(TypedDict):
    items: list[Event]
    last_event_id: int
    has_more: bool
    epoch: str
