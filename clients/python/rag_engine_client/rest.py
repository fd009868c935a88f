"""`RagClient`: the routes of docs/contract.md §4 over one httpx.AsyncClient.

Thin on purpose: each method is one request, returns the JSON as the typed shape of
`rag_engine_client.types`, and raises `ApiError` for any non-2xx answer. The token is asked
of the provider for every request, so a refreshed token is used from the next call on.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, cast

import httpx

from rag_engine_client.errors import ApiError
from rag_engine_client.realtime import Realtime
from rag_engine_client.tokens import TokenProvider, as_provider, current_token
from rag_engine_client.types import (
    Conversation,
    Document,
    DocumentPage,
    EventsPage,
    Job,
    Member,
    Message,
    PostedMessage,
    Role,
    SearchFilters,
    SearchHit,
    UploadResult,
    Workspace,
)

# A file to upload: a path, or (filename, content, content type). The server decides the
# type from the bytes and the name; the content type is only passed along.
UploadFile = str | os.PathLike[str] | tuple[str, bytes, str]


class _BearerFromProvider(httpx.Auth):
    """Ask the provider for the token of each request (sync or async provider)."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {await current_token(self.provider)}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("RagClient is async only")


def raise_for_error(response: httpx.Response) -> None:
    """An ApiError for a non-2xx answer, with the contract's code, message and extra fields."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        extra = {k: v for k, v in body.items() if k != "error"}
        extra.update({k: v for k, v in error.items() if k not in ("code", "message")})
        raise ApiError(response.status_code, error["code"], str(error.get("message", "")), extra)
    text = response.text[:200]
    raise ApiError(response.status_code, f"http_{response.status_code}", text or response.reason_phrase)


def _file_part(file: UploadFile) -> tuple[str, tuple[str, bytes, str]]:
    if isinstance(file, tuple):
        return ("files", file)
    path = Path(file)
    return ("files", (path.name, path.read_bytes(), "application/octet-stream"))


class RagClient:
    """Async REST client of one rag-engine api. Use as `async with RagClient(url, token) as c:`.

    `token` is a JWT or a provider (a function, sync or async, returning the current JWT).
    """

    def __init__(
        self,
        base_url: str,
        token: str | TokenProvider,
        *,
        timeout: float = 60.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_provider = as_provider(token)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._auth = _BearerFromProvider(self.token_provider)

    async def __aenter__(self) -> RagClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, self.base_url + path, auth=self._auth, **kwargs)
        raise_for_error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def _params(**params: object) -> dict[str, str]:
        return {k: str(v) for k, v in params.items() if v is not None}

    # Workspaces and members

    async def create_workspace(self, name: str) -> Workspace:
        return cast(Workspace, await self._request("POST", "/api/workspaces", json={"name": name}))

    async def list_workspaces(self) -> list[Workspace]:
        return cast(list[Workspace], (await self._request("GET", "/api/workspaces"))["items"])

    async def add_member(self, workspace_id: str, user_id: str, role: Role = "member") -> Member:
        body = {"user_id": str(user_id), "role": role}
        return cast(Member, await self._request("POST", f"/api/workspaces/{workspace_id}/members", json=body))

    async def remove_member(self, workspace_id: str, user_id: str) -> None:
        await self._request("DELETE", f"/api/workspaces/{workspace_id}/members/{user_id}")

    # Documents and jobs

    async def upload(self, workspace_id: str, files: Sequence[UploadFile]) -> UploadResult:
        """Upload files (paths or (filename, bytes, content_type)). 201 may still list refused
        files in `errors`; when every file is refused, ApiError with `extra["errors"]`."""
        parts = [_file_part(f) for f in files]
        path = f"/api/workspaces/{workspace_id}/documents/upload"
        return cast(UploadResult, await self._request("POST", path, files=parts))

    async def list_documents(
        self,
        workspace_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> DocumentPage:
        params = self._params(status=status, limit=limit, cursor=cursor)
        path = f"/api/workspaces/{workspace_id}/documents"
        return cast(DocumentPage, await self._request("GET", path, params=params))

    async def get_document(self, document_id: str) -> Document:
        return cast(Document, await self._request("GET", f"/api/documents/{document_id}"))

    async def list_jobs(self, document_id: str) -> list[Job]:
        return cast(list[Job], (await self._request("GET", f"/api/documents/{document_id}/jobs"))["items"])

    async def reprocess(self, document_id: str) -> Document:
        """Queue a new parse job; the document as requeued, with its `parse_job_id`."""
        return cast(Document, await self._request("POST", f"/api/documents/{document_id}/reprocess"))

    async def delete_document(self, document_id: str) -> None:
        await self._request("DELETE", f"/api/documents/{document_id}")

    # Search and conversations

    async def search(
        self, workspace_id: str, q: str, k: int = 10, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        """The best chunks; `filters` (docs/api.md "Search") become repeated query parameters."""
        params: list[tuple[str, str]] = list(self._params(q=q, k=k).items())
        for name, value in (filters or {}).items():
            values = value if isinstance(value, list) else [value]
            params += [(name, str(v)) for v in values if v is not None]
        body = await self._request("GET", f"/api/workspaces/{workspace_id}/search", params=params)
        return cast(list[SearchHit], body["items"])

    async def create_conversation(self, workspace_id: str, title: str) -> Conversation:
        path = f"/api/workspaces/{workspace_id}/conversations"
        return cast(Conversation, await self._request("POST", path, json={"title": title}))

    async def list_conversations(self, workspace_id: str) -> list[Conversation]:
        body = await self._request("GET", f"/api/workspaces/{workspace_id}/conversations")
        return cast(list[Conversation], body["items"])

    async def list_messages(self, conversation_id: str) -> list[Message]:
        body = await self._request("GET", f"/api/conversations/{conversation_id}/messages")
        return cast(list[Message], body["items"])

    async def post_message(
        self, conversation_id: str, content: str, filters: SearchFilters | None = None
    ) -> PostedMessage:
        """Ask a question; `filters` narrow the passages its answer may use, as a search's."""
        path = f"/api/conversations/{conversation_id}/messages"
        body: dict[str, object] = {"content": content}
        if filters is not None:
            body["filters"] = filters
        return cast(PostedMessage, await self._request("POST", path, json=body))

    # Events

    async def events(self, after: int = 0, limit: int = 500, epoch: str | None = None) -> EventsPage:
        """The caller's events after `after` (REST resync). A 409 (pruned history, another
        epoch) is an ApiError whose `extra` has `oldest_event_id` and `epoch`."""
        params = self._params(after=after, limit=limit, epoch=epoch)
        return cast(EventsPage, await self._request("GET", "/api/events", params=params))

    def realtime(self, **options: Any) -> Realtime:
        """A realtime stream of this api and token provider (see `Realtime` for `options`)."""
        return Realtime(self.base_url, self.token_provider, **options)
