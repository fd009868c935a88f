from __future__ import annotations

import os

import pytest

from rag_storage import ObjectNotFound, ObjectStore, ObjectTooLarge
from rag_storage.settings import S3Settings

pytestmark = pytest.mark.anyio


def settings(env: dict[str, str]) -> S3Settings:
    return S3Settings(**{k.lower(): v for k, v in env.items()})


async def test_put_get_delete_and_missing_key(s3_env: dict[str, str]) -> None:
    async with ObjectStore(settings(s3_env)) as store:
        await store.check_bucket()
        await store.put_bytes("a/b.txt", b"hello", "text/plain")
        assert await store.get_bytes("a/b.txt") == b"hello"
        with pytest.raises(ObjectTooLarge) as too_large:
            await store.get_bytes("a/b.txt", max_bytes=3)
        assert (too_large.value.size, too_large.value.limit) == (5, 3)
        assert await store.get_bytes("a/b.txt", max_bytes=5) == b"hello"
        await store.delete(["a/b.txt", "never-existed"])
        assert not await store.exists("a/b.txt")
        with pytest.raises(ObjectNotFound):
            await store.get_bytes("a/b.txt")


async def test_multipart_writer_streams_parts_and_abort_leaves_nothing(s3_env: dict[str, str]) -> None:
    part = 5 * 1024 * 1024
    data = os.urandom(part * 2 + 123)
    async with ObjectStore(settings(s3_env)) as store:
        writer = store.writer("big", "application/octet-stream", part_size=part)
        for i in range(0, len(data), 1_000_003):
            await writer.write(data[i : i + 1_000_003])
        await writer.complete()
        assert await store.get_bytes("big") == data

        aborted = store.writer("half", "application/octet-stream", part_size=part)
        await aborted.write(data[: part + 10])
        await aborted.abort()
        assert not await store.exists("half")
        await writer.abort()  # a completed object is removed too (rollback after a DB failure)
        assert not await store.exists("big")


async def test_missing_bucket_is_reported(s3_env: dict[str, str]) -> None:
    async with ObjectStore(settings({**s3_env, "S3_BUCKET": "no-such-bucket-here"})) as store:
        with pytest.raises(ObjectNotFound):
            await store.check_bucket()
