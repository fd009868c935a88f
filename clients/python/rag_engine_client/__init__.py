"""The official Python client of rag-engine: `RagClient` (REST) and `Realtime` (events)."""

from rag_engine_client.backoff import Backoff
from rag_engine_client.errors import ApiError, RealtimeUnauthorized
from rag_engine_client.realtime import ConnectionState, Realtime, TransportChoice
from rag_engine_client.rest import RagClient, UploadFile
from rag_engine_client.tokens import TokenProvider
from rag_engine_client.types import (
    Conversation,
    Document,
    DocumentPage,
    Event,
    EventsPage,
    Job,
    Member,
    Message,
    PostedMessage,
    SearchFilters,
    SearchHit,
    UploadResult,
    Workspace,
)

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "Backoff",
    "ConnectionState",
    "Conversation",
    "Document",
    "DocumentPage",
    "Event",
    "EventsPage",
    "Job",
    "Member",
    "Message",
    "PostedMessage",
    "RagClient",
    "Realtime",
    "RealtimeUnauthorized",
    "SearchFilters",
    "SearchHit",
    "TokenProvider",
    "TransportChoice",
    "UploadFile",
    "UploadResult",
    "Workspace",
    "__version__",
]
