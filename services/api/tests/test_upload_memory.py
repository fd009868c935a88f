"""A 200 MB upload keeps the api's memory flat (RSS growth under 50 MB).

The body is generated on the fly by the client, sent with a Content-Length, and the api
streams it to S3 in 8 MiB parts. Growth = the process's peak RSS (VmHWM) after the upload
minus its RSS before it, read from /proc/<pid>/status. The figure is printed (pytest -s).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

MiB = 1024 * 1024
UPLOAD_BYTES = 200 * MiB
GROWTH_LIMIT_KB = 50 * 1024
BOUNDARY = "memory-test-boundary"


def _body(size: int) -> tuple[Iterator[bytes], int, str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    line = b"All work and no play makes a flat memory profile. 0123456789\n"
    block = (line * (MiB // len(line) + 1))[:MiB]

    def chunks() -> Iterator[bytes]:
        yield head
        sent = 0
        while sent < size:
            piece = block[: min(MiB, size - sent)]
            sent += len(piece)
            yield piece
        yield tail

    expected = hashlib.sha256()
    for start in range(0, size, MiB):
        expected.update(block[: min(MiB, size - start)])
    return chunks(), len(head) + size + len(tail), expected.hexdigest()


def test_200mb_upload_keeps_rss_flat(api_factory: Any) -> None:
    api = api_factory(MAX_UPLOAD_BYTES=str(300 * MiB))
    owner = api.user()
    ws = owner.create_workspace()["id"]
    assert owner.upload(ws, [("warmup.txt", b"warm up the code paths")]).status_code == 201
    rss_before = api.rss_kb()

    body, length, sha256 = _body(UPLOAD_BYTES)
    began = time.monotonic()
    response = owner.client.post(
        f"/api/workspaces/{ws}/documents/upload",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(length)},
        timeout=300,
    )
    elapsed = time.monotonic() - began
    assert response.status_code == 201, response.text
    [doc] = response.json()["documents"]
    assert (doc["size_bytes"], doc["sha256"]) == (UPLOAD_BYTES, sha256)

    peak, rss_after = api.hwm_kb(), api.rss_kb()
    growth = peak - rss_before
    print(
        f"\n200 MB upload: {elapsed:.1f}s ({UPLOAD_BYTES / MiB / elapsed:.0f} MiB/s); api RSS before "
        f"{rss_before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, after {rss_after / 1024:.1f} MiB; "
        f"growth {growth / 1024:.1f} MiB (limit {GROWTH_LIMIT_KB / 1024:.0f})"
    )
    key = f"workspaces/{ws}/documents/{doc['id']}/original"
    s3 = api.s3()
    assert s3.head_object(Bucket=api.bucket, Key=key)["ContentLength"] == UPLOAD_BYTES
    s3.delete_object(Bucket=api.bucket, Key=key)  # moto keeps objects in memory
    assert growth < GROWTH_LIMIT_KB
