"""Listing and cleanup operations of ObjectStore against the real moto S3 server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rag_storage import ObjectStore
from rag_storage.settings import S3Settings

pytestmark = pytest.mark.anyio


def settings(env: dict[str, str]) -> S3Settings:
    return S3Settings(**{k.lower(): v for k, v in env.items()})


async def test_list_objects_pages_through_every_key_under_the_prefix_only(s3_env: dict[str, str]) -> None:
    async with ObjectStore(settings(s3_env)) as store:
        keys = [f"p/{i:04d}" for i in range(250)]
        for key in keys:
            await store.put_bytes(key, b"x", "text/plain")
        await store.put_bytes("q/outside", b"x", "text/plain")
        pages = [page async for page in store.list_objects("p/", page_size=100)]
        assert [len(page) for page in pages] == [100, 100, 50]
        listed = [o.key for page in pages for o in page]
        assert listed == keys
        now = datetime.now(UTC)
        for o in pages[0]:
            assert o.size == 1
            assert now - timedelta(minutes=5) < o.last_modified <= now + timedelta(minutes=5)
        assert [page async for page in store.list_objects("empty/")] == []


async def test_unfinished_multipart_uploads_are_listed_and_aborted(s3_env: dict[str, str]) -> None:
    async with ObjectStore(settings(s3_env)) as store:
        writer = store.writer("up/half", "application/octet-stream", part_size=1024)
        await writer.write(b"x" * 2048)  # two parts uploaded, never completed
        other = store.writer("elsewhere/half", "application/octet-stream", part_size=1024)
        await other.write(b"x" * 1024)
        (upload,) = [u async for u in store.list_multipart_uploads("up/")]
        assert upload.key == "up/half"
        # moto reports a fixed Initiated (2010-11-10); real S3 the upload's start. Aware either way.
        assert upload.initiated.utcoffset() is not None and upload.initiated < datetime.now(UTC)
        await store.abort_multipart_upload(upload.key, upload.upload_id)
        assert [u async for u in store.list_multipart_uploads("up/")] == []
        # Aborting again (another replica got there first) is not an error.
        await store.abort_multipart_upload(upload.key, upload.upload_id)
        assert [u.key async for u in store.list_multipart_uploads()] == ["elsewhere/half"]
        assert not await store.exists("up/half")
