"""One uploaded file on its way in: hashed, counted, sniffed and streamed to S3 as it arrives.

The format is rag_core.formats' verdict, the rule the parse worker reads by, so what is
stored here can be read there. The first HEAD_BYTES are held back until the type is
known (the object is created with the sniffed Content-Type); after that every chunk goes
straight to a multipart writer that keeps at most one part in memory. A refused file
stops being stored at once and its partial upload is aborted; the caller keeps reading
the body past it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import structlog

from rag_api.filenames import clean_filename
from rag_core.formats import (
    HEAD_BYTES,
    MIME_TYPES,
    Unsupported,
    scanner_for,
    sniff,
)
from rag_core.storage_keys import original_key
from rag_storage import MultipartWriter, ObjectStore, StorageError

log = structlog.get_logger("rag_api.intake")


@dataclass(frozen=True, slots=True)
class Refusal:
    filename: str
    status: int
    code: str
    message: str

    def item(self) -> dict[str, Any]:
        return {"filename": self.filename, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class Received:
    """A file fully stored in S3, not yet registered in the database."""

    document_id: UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    key: str
    writer: MultipartWriter  # `abort()` deletes the stored object again


class FileIntake:
    def __init__(self, store: ObjectStore, workspace_id: UUID, raw_filename: str, max_bytes: int) -> None:
        self.filename = clean_filename(raw_filename)
        self.document_id = uuid4()
        self.key = original_key(workspace_id, self.document_id)
        self.size = 0
        self.refusal: Refusal | None = None
        self._store = store
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._content_type = ""
        self._writer: MultipartWriter | None = None
        self._office = scanner_for(self.filename)  # Word, PowerPoint, Excel: the whole file decides

    async def feed(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # the rest of a refused part is read and dropped
        self.size += len(data)
        if self.size > self._max_bytes:
            await self._refuse(
                413, "file_too_large", f"The file is larger than the limit of {self._max_bytes} bytes."
            )
            return
        self._hash.update(data)
        if self._office is not None:
            self._office.feed(data)
        if self._writer is None:
            self._head += data
            if len(self._head) >= HEAD_BYTES:
                await self._open(final=False)
        else:
            await self._write(data)

    async def finish(self) -> Received | Refusal:
        """Called at the end of the part: the stored file, or why it was refused."""
        if self.refusal is None and self.size == 0:
            self.refusal = Refusal(self.filename, 400, "empty_file", "The file is empty.")
        if self.refusal is None and self._writer is None:
            await self._open(final=True)
        if self.refusal is None and self._office is not None and (why := self._office.refusal()) is not None:
            await self._refuse(415, "unsupported_media_type", why.message)
        if self.refusal is not None:
            return self.refusal
        assert self._writer is not None
        try:
            await self._writer.complete()
        except StorageError as exc:
            await self._storage_failed(exc)
            assert self.refusal is not None
            return self.refusal
        return Received(
            document_id=self.document_id,
            filename=self.filename,
            content_type=self._content_type,
            size=self.size,
            sha256=self._hash.hexdigest(),
            key=self.key,
            writer=self._writer,
        )

    async def abort(self) -> None:
        """Leave nothing in S3 (a failure elsewhere in the request). Never raises."""
        if self._writer is not None:
            await self._writer.abort()

    async def _open(self, final: bool) -> None:
        head = bytes(self._head)
        verdict = sniff(self.filename, head[:HEAD_BYTES], final and len(head) <= HEAD_BYTES)
        if isinstance(verdict, Unsupported):
            await self._refuse(415, "unsupported_media_type", verdict.message)
            return
        self._content_type = MIME_TYPES[verdict]
        self._writer = self._store.writer(self.key, self._content_type)
        self._head = bytearray()
        await self._write(head)

    async def _write(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            await self._writer.write(data)
        except StorageError as exc:
            await self._storage_failed(exc)

    async def _storage_failed(self, exc: StorageError) -> None:
        log.warning("upload_storage_failed", key=self.key, error=str(exc))
        await self._refuse(503, "storage_unavailable", "Object storage is unavailable; try again later.")

    async def _refuse(self, status: int, code: str, message: str) -> None:
        self.refusal = Refusal(self.filename, status, code, message)
        self._head = bytearray()
        await self.abort()
