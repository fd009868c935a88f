"""A thin async wrapper over aiobotocore's S3 client.

Why a wrapper: every service needs the same three things (one client per process
with sane timeouts and path-style addressing for R2/MinIO/moto, errors mapped to
two classes the callers can act on, and a streaming multipart upload that keeps
memory flat) and none of them should know botocore's exception zoo.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from rag_storage.settings import S3Settings

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB; 8 MiB keeps memory small


class StorageError(Exception):
    """The object store failed or could not be reached (usually transient)."""


class ObjectNotFound(StorageError):
    """The key does not exist (permanent for the caller)."""


class ObjectTooLarge(StorageError):
    """The object is larger than the caller's `max_bytes` (permanent: it will not shrink).

    A type of its own so that callers tell it from a storage outage by type, not by
    matching this message's wording."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"object {key} is {size} bytes, over the {limit} limit")
        self.size = size
        self.limit = limit


def _is_not_found(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


class ObjectStore:
    """One S3 client for the process; use as an async context manager."""

    def __init__(self, settings: S3Settings, *, connect_timeout: float = 5, read_timeout: float = 60) -> None:
        self.bucket = settings.s3_bucket
        self._settings = settings
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
            max_pool_connections=32,
        )
        self._exit_stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> ObjectStore:
        s = self._settings
        self._client = await self._exit_stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=s.s3_endpoint_url,
                region_name=s.s3_region,
                aws_access_key_id=s.s3_access_key_id,
                aws_secret_access_key=s.s3_secret_access_key,
                config=self._config,
            )
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._exit_stack.aclose()
        self._client = None

    @contextlib.asynccontextmanager
    async def _errors(self, key: str = ""):  # type: ignore[no-untyped-def]
        try:
            yield
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(f"object {key or self.bucket} not found") from exc
            raise StorageError(f"object storage error: {exc}") from exc
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise StorageError(f"object storage unreachable: {exc}") from exc

    async def check_bucket(self) -> None:
        """Raise StorageError unless the bucket exists and is reachable."""
        async with self._errors():
            await self._client.head_bucket(Bucket=self.bucket)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        async with self._errors(key):
            await self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The whole object; raises ObjectTooLarge when it is larger than `max_bytes`."""
        async with self._errors(key):
            response = await self._client.get_object(Bucket=self.bucket, Key=key)
            length = int(response.get("ContentLength", 0))
            if max_bytes is not None and length > max_bytes:
                response["Body"].close()
                raise ObjectTooLarge(key, length, max_bytes)
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data

    async def exists(self, key: str) -> bool:
        try:
            async with self._errors(key):
                await self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete keys; missing ones are fine (delete is idempotent)."""
        batch = [{"Key": k} for k in keys]
        for start in range(0, len(batch), 1000):
            async with self._errors():
                await self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch[start : start + 1000], "Quiet": True}
                )

    def writer(self, key: str, content_type: str, part_size: int = PART_SIZE) -> MultipartWriter:
        return MultipartWriter(self, key, content_type, part_size)

    # -- listing (storage hygiene: finding what nothing refers to) ---------------------------

    async def list_objects(self, prefix: str, page_size: int = 1000) -> AsyncIterator[list[StoredObject]]:
        """The objects under `prefix`, one page (at most `page_size`, S3's max 1000) at a time.

        Pages, not single objects: a caller checks each page against its database in one
        query. The listing is a snapshot per page, not of the whole bucket (S3 semantics).
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
        while True:
            async with self._errors():
                response = await self._client.list_objects_v2(**params)
            page = [
                StoredObject(key=o["Key"], size=int(o.get("Size", 0)), last_modified=o["LastModified"])
                for o in response.get("Contents", [])
            ]
            if page:
                yield page
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    async def list_multipart_uploads(self, prefix: str = "") -> AsyncIterator[PendingUpload]:
        """Multipart uploads begun and neither completed nor aborted (their parts cost storage)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            async with self._errors():
                response = await self._client.list_multipart_uploads(**params)
            for upload in response.get("Uploads", []):
                yield PendingUpload(
                    key=upload["Key"], upload_id=upload["UploadId"], initiated=upload["Initiated"]
                )
            if not response.get("IsTruncated"):
                return
            params["KeyMarker"] = response.get("NextKeyMarker", "")
            params["UploadIdMarker"] = response.get("NextUploadIdMarker", "")

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop an unfinished upload and its parts; one already gone is fine."""
        try:
            async with self._errors(key):
                await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ObjectNotFound:
            return
        except StorageError as exc:
            if isinstance(exc.__cause__, ClientError) and _error_code(exc.__cause__) == "NoSuchUpload":
                return
            raise


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime  # timezone-aware (UTC), as S3 reports it


@dataclass(frozen=True, slots=True)
class PendingUpload:
    key: str
    upload_id: str
    initiated: datetime  # timezone-aware (UTC)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class MultipartWriter:
    """Stream an object of unknown size to S3 holding at most one part in memory.

    Small objects (one part) are sent with a single PUT. Call `write` as data
    arrives, then `complete()`; on any failure call `abort()` so no part is left
    behind (aborting also deletes a completed object, for rollback after a DB error).
    """

    def __init__(self, store: ObjectStore, key: str, content_type: str, part_size: int) -> None:
        self.key = key
        self.size = 0
        self._store = store
        self._content_type = content_type
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._completed = False

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            await self._upload_part(part)

    async def _upload_part(self, part: bytes) -> None:
        client = self._store._client
        async with self._store._errors(self.key):
            if self._upload_id is None:
                created = await client.create_multipart_upload(
                    Bucket=self._store.bucket, Key=self.key, ContentType=self._content_type
                )
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            response = await client.upload_part(
                Bucket=self._store.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
            )
            self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    async def complete(self) -> None:
        if self._upload_id is None:
            await self._store.put_bytes(self.key, bytes(self._buffer), self._content_type)
        else:
            if self._buffer:
                await self._upload_part(bytes(self._buffer))
            async with self._store._errors(self.key):
                await self._store._client.complete_multipart_upload(
                    Bucket=self._store.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        self._buffer = bytearray()
        self._completed = True

    async def abort(self) -> None:
        """Best effort: leave nothing behind. Never raises."""
        self._buffer = bytearray()
        with contextlib.suppress(StorageError):
            if self._upload_id is not None and not self._completed:
                async with self._store._errors(self.key):
                    await self._store._client.abort_multipart_upload(
                        Bucket=self._store.bucket, Key=self.key, UploadId=self._upload_id
                    )
            elif self._completed:
                await self._store.delete([self.key])
