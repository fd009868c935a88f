"""Uploads through a real api process: accepted types, every refusal, dedupe, no orphans."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOCUMENT_KEYS = {
    "id",
    "workspace_id",
    "filename",
    "content_type",
    "size_bytes",
    "sha256",
    "status",
    "error",
    "chunk_count",
    "created_at",
    "updated_at",
}

Multipart = Callable[..., tuple[bytes, str]]


def package_bytes(main_part: str) -> bytes:
    """A zip naming an Office format's main part (ppt/presentation.xml, xl/workbook.xml)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(main_part, "<x/>")
    return buffer.getvalue()


PPTX_TYPE = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def docx_bytes(text: str = "Hello from Word") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", f"<w:document><w:body><w:t>{text}</w:t></w:body></w:document>")
    return buffer.getvalue()


def assert_nothing_stored(api: Any, workspace_id: str) -> None:
    """No row and no object (not even an unfinished multipart upload) for the workspace."""
    for table in ("documents", "parse_jobs"):
        rows = api.sql(f"SELECT count(*) FROM {table} WHERE workspace_id = %s", (workspace_id,))
        assert rows[0][0] == 0, f"{table} has rows"
    files = api.sql(
        "SELECT count(*) FROM files f JOIN documents d ON d.id = f.document_id WHERE d.workspace_id = %s",
        (workspace_id,),
    )
    assert files[0][0] == 0
    # Only the workspace's membership events (workspace.member_added of its members).
    events = api.sql(
        "SELECT count(*) FROM events WHERE payload->>'workspace_id' = %s AND type NOT LIKE 'workspace.%%'",
        (workspace_id,),
    )
    assert events[0][0] == 0
    assert api.s3_keys(f"workspaces/{workspace_id}/") == []
    assert [k for k in api.s3_uploads_in_progress() if workspace_id in k] == []


def test_upload_one_file_stores_rows_object_events_and_rings_parse_jobs(shared_api: Any) -> None:
    owner, member = shared_api.user(), shared_api.user()
    ws = owner.create_workspace()
    assert owner.add_member(ws["id"], member.id).status_code == 201
    with psycopg.connect(shared_api.database_url, autocommit=True) as listen:
        listen.execute("LISTEN parse_jobs")
        response = owner.upload(ws["id"], [("notes.txt", b"hello world\n", "image/png")])
        assert response.status_code == 201, response.text
        body = response.json()
        notices = [n.payload for n in listen.notifies(timeout=5, stop_after=1)]
    assert body["errors"] == []
    [doc] = body["documents"]
    assert DOCUMENT_KEYS | {"parse_job_id", "duplicate"} == set(doc)
    assert doc["filename"] == "notes.txt"
    assert doc["content_type"] == "text/plain"  # sniffed, not the client's image/png
    assert doc["size_bytes"] == 12
    assert doc["status"] == "queued" and doc["duplicate"] is False and doc["chunk_count"] == 0
    assert notices == [doc["parse_job_id"]]

    key = f"workspaces/{ws['id']}/documents/{doc['id']}/original"
    assert shared_api.s3_keys(f"workspaces/{ws['id']}/") == [key]
    obj = shared_api.s3().get_object(Bucket=shared_api.bucket, Key=key)
    assert obj["Body"].read() == b"hello world\n" and obj["ContentType"] == "text/plain"
    [(kind, object_key, size)] = shared_api.sql(
        "SELECT kind, object_key, size_bytes FROM files WHERE document_id = %s", (doc["id"],)
    )
    assert (kind, object_key, size) == ("original", key, 12)
    [(status, attempt, max_attempts)] = shared_api.sql(
        "SELECT status, attempt, max_attempts FROM parse_jobs WHERE id = %s", (doc["parse_job_id"],)
    )
    assert (status, attempt, max_attempts) == ("queued", 0, 3)  # JOB_MAX_ATTEMPTS of shared_api

    for user in (owner, member):
        events = shared_api.sql(  # after the workspace's workspace.member_added events
            "SELECT id, type, payload FROM events WHERE user_id = %s AND type NOT LIKE 'workspace.%%' ORDER BY id",
            (user.id,),
        )
        assert [e[1] for e in events] == ["document.created", "job.status_updated"]
        assert events[1][0] == events[0][0] + 1, "consecutive ids, one transaction"
        assert events[0][2]["status"] == "queued" and events[0][2]["filename"] == "notes.txt"
        job = events[1][2]
        assert (job["job_type"], job["status"], job["attempt"], job["max_attempts"]) == (
            "parse",
            "queued",
            0,
            3,
        )
        assert job["job_id"] == doc["parse_job_id"]


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("a.md", b"# Title\n\nText", "text/markdown"),
        ("page.html", b"<html><body>hi</body></html>", "text/html"),
        ("page.HTM", b"<p>hi</p>", "text/html"),
        ("paper.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n", "application/pdf"),
        ("letter.docx", docx_bytes(), DOCX_TYPE),
        ("macro.docm", docx_bytes(), DOCX_TYPE),
        ("template.dotx", docx_bytes(), DOCX_TYPE),
        ("utf32-no-bom.txt", "plain, é and ✓\n".encode("utf-32-le") * 20, "text/plain"),
        ("utf16.txt", "\ufeffhé llo".encode("utf-16-le"), "text/plain"),
        ("utf16-no-bom.txt", "plain, é and ✓\n".encode("utf-16-le") * 20, "text/plain"),
        ("utf32.md", "\ufeff# héllo".encode("utf-32-be"), "text/markdown"),
        ("accents.txt", "héllo wörld ✓".encode(), "text/plain"),
        ("latin1.txt", "caf\xe9 cr\xe8me br\xfbl\xe9e\r\n".encode("latin-1"), "text/plain"),  # 8-bit text
        ("deck.pptx", package_bytes("ppt/presentation.xml"), PPTX_TYPE),
        ("macro-deck.pptm", package_bytes("ppt/presentation.xml"), PPTX_TYPE),
        ("book.xlsx", package_bytes("xl/workbook.xml"), XLSX_TYPE),
        ("template.xltx", package_bytes("xl/workbook.xml"), XLSX_TYPE),
        ("table.csv", "Région;Ventes\nNord;1 200\n".encode("cp1252"), "text/csv"),
        ("tabs.tsv", b"Region\tSales\nNorth\t1200\n", "text/csv"),
        ("mail.eml", b"From: Ada <ada@example.org>\r\nSubject: Hi\r\n\r\nBody\r\n", "message/rfc822"),
    ],
)
def test_supported_types_are_sniffed(shared_api: Any, name: str, data: bytes, content_type: str) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [(name, data)])
    assert response.status_code == 201, response.text
    assert response.json()["documents"][0]["content_type"] == content_type


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("evil.txt", b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8),  # a binary renamed .txt
        ("image.md", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("nul.txt", b"plain text\x00with a NUL"),
        ("noise.txt", bytes(range(1, 32)) * 20 + "caf\xe9".encode("latin-1")),  # control bytes: binary
        ("fake.pdf", b"just some text"),
        ("fake.docx", b"just some text"),
        ("zip.docx", b"PK\x03\x04" + b"\x00" * 100),  # a zip without word/document.xml
        ("program.exe", b"MZ\x90\x00"),
        ("noextension", b"hello"),
        ("fake.pptx", b"just some text"),
        ("fake.xlsx", b"just some text"),
        ("book.csv", package_bytes("xl/workbook.xml")),  # a workbook renamed .csv is not text
        ("image.eml", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("letter.eml", b"Dear Ada,\n\nsee you: soon.\n"),  # text, but no header lines
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512),
        ("old.ppt", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512),
    ],
)
def test_unsupported_media_type_leaves_nothing(shared_api: Any, name: str, data: bytes) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [(name, data)])
    assert response.status_code == 415, response.text
    body = response.json()
    assert body["error"]["code"] == "unsupported_media_type" and body["error"]["message"]
    assert body["errors"] == [body["error"]] and body["error"]["filename"] == name
    assert_nothing_stored(shared_api, ws["id"])


CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20_000


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "old.doc",
            CFB,
            "This is an old Word (.doc) file, which is not supported. Save it as .docx and upload it again.",
        ),
        (
            "old.docx",
            CFB,
            "This is an old Word (.doc) file, which is not supported. Save it as .docx and upload it again.",
        ),
        (
            "locked.docx",  # the encryption stream is named past the first chunks: the scan reads it all
            CFB + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 100,
            "The Word document is password-protected and cannot be read. Remove the password and upload it again.",
        ),
    ],
)
def test_word_refusals_say_why(shared_api: Any, name: str, data: bytes, message: str) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [(name, data)])
    assert response.status_code == 415, response.text
    assert response.json()["error"]["message"] == message
    assert_nothing_stored(shared_api, ws["id"])


# What a sniff of the name and the head decides (rag_core.formats.sniff) for the new Office formats.
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "old.xls",
            CFB,
            "This is an old Excel (.xls) file, which is not supported. Save it as .xlsx and upload it again.",
        ),
        (
            "old.ppt",
            CFB,
            "This is an old PowerPoint (.ppt) file, which is not supported. Save it as .pptx and upload it again.",
        ),
        ("fake.xlsx", b"just some text", "The file is not an Excel workbook."),
        ("fake.pptx", b"just some text", "The file is not a PowerPoint presentation."),
    ],
)
def test_office_refusals_say_why(shared_api: Any, name: str, data: bytes, message: str) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [(name, data)])
    assert response.status_code == 415, response.text
    assert response.json()["error"]["message"] == message
    assert_nothing_stored(shared_api, ws["id"])


# What needs the whole-file scan (rag_core.formats.scanner_for): every Office format, not only Word.
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("zip.pptx", b"PK\x03\x04" + b"\x00" * 100, "The file is not a PowerPoint presentation."),
        ("deck.xlsx", package_bytes("ppt/presentation.xml"), "The file is not an Excel workbook."),
        (
            "old.xlsx",
            CFB,
            "This is an old Excel (.xls) file, which is not supported. Save it as .xlsx and upload it again.",
        ),
        (
            "locked.pptx",
            CFB + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 100,
            "The PowerPoint presentation is password-protected and cannot be read. "
            "Remove the password and upload it again.",
        ),
    ],
)
def test_office_packages_are_scanned_whole(shared_api: Any, name: str, data: bytes, message: str) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [(name, data)])
    assert response.status_code == 415, response.text
    assert response.json()["error"]["message"] == message
    assert_nothing_stored(shared_api, ws["id"])


def test_empty_file(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [("empty.txt", b"")])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_file"
    assert_nothing_stored(shared_api, ws["id"])


def test_too_large_is_413_and_the_connection_stays_usable(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    big = b"a" * (1024 * 1024 + 1)  # shared_api allows 1 MiB
    response = owner.upload(ws["id"], [("big.txt", big)])
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "file_too_large"
    assert_nothing_stored(shared_api, ws["id"])
    # The whole body was read: the same keep-alive connection serves the next request.
    assert owner.client.get("/api/workspaces").status_code == 200
    exact = owner.upload(ws["id"], [("exact.txt", b"b" * (1024 * 1024))])
    assert exact.status_code == 201


def test_too_large_after_s3_parts_were_sent_aborts_the_multipart_upload(api_factory: Any) -> None:
    api = api_factory(MAX_UPLOAD_BYTES=str(10 * 1024 * 1024))  # above the 8 MiB part size
    owner = api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [("big.txt", b"x" * (12 * 1024 * 1024))])
    assert response.status_code == 413
    assert_nothing_stored(api, ws["id"])
    assert api.s3_uploads_in_progress() == []


def test_mixed_upload_accepts_some_and_lists_the_refused(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(
        ws["id"], [("empty.txt", b""), ("good.md", b"# good"), ("bad.txt", b"\x00\x01\x02")]
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [d["filename"] for d in body["documents"]] == ["good.md"]
    assert [(e["filename"], e["code"]) for e in body["errors"]] == [
        ("empty.txt", "empty_file"),
        ("bad.txt", "unsupported_media_type"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert shared_api.sql("SELECT count(*) FROM documents WHERE workspace_id = %s", (ws["id"],))[0][0] == 1
    assert len(shared_api.s3_keys(f"workspaces/{ws['id']}/")) == 1


def test_all_refused_answers_the_first_refusal(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [("x.exe", b"MZ"), ("empty.txt", b"")])
    assert response.status_code == 415
    body = response.json()
    assert body["error"]["code"] == "unsupported_media_type"
    assert [e["code"] for e in body["errors"]] == ["unsupported_media_type", "empty_file"]
    assert_nothing_stored(shared_api, ws["id"])


def test_path_traversal_and_control_characters_in_file_names(shared_api: Any, multipart: Multipart) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    body, ctype = multipart(
        [
            ("files", "../../etc/passwd.txt", b"root:x:0:0"),
            ("files", b"..\\..\\windows\\win.ini.txt", b"[fonts]"),
            ("files", b"bell\x07and\x1bescape.md", b"# doc"),
            ("files", "x" * 300 + ".txt", b"long name"),
        ]
    )
    response = owner.upload_raw(ws["id"], body, ctype)
    assert response.status_code == 201, response.text
    names = [d["filename"] for d in response.json()["documents"]]
    assert names[:3] == ["passwd.txt", "win.ini.txt", "bellandescape.md"]
    assert len(names[3]) == 255 and names[3].endswith(".txt")
    keys = shared_api.s3_keys(f"workspaces/{ws['id']}/")
    assert len(keys) == 4
    assert all(k.endswith("/original") and "passwd" not in k and ".." not in k for k in keys)
    assert not [k for k in shared_api.s3_keys() if "passwd" in k or "etc/" in k]


def test_duplicate_content_returns_the_existing_document(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    first = owner.upload(ws["id"], [("one.txt", b"same bytes")]).json()["documents"][0]
    again = owner.upload(ws["id"], [("two.txt", b"same bytes"), ("three.txt", b"same bytes")])
    assert again.status_code == 201
    items = again.json()["documents"]
    assert [(d["id"], d["duplicate"], d["filename"]) for d in items] == [
        (first["id"], True, "one.txt"),
        (first["id"], True, "one.txt"),
    ]
    assert items[0]["parse_job_id"] == first["parse_job_id"]
    assert shared_api.sql("SELECT count(*) FROM parse_jobs WHERE workspace_id = %s", (ws["id"],))[0][0] == 1
    assert shared_api.s3_keys(f"workspaces/{ws['id']}/") == [
        f"workspaces/{ws['id']}/documents/{first['id']}/original"
    ]
    # Another workspace is not deduplicated against this one.
    other = owner.create_workspace("other")
    elsewhere = owner.upload(other["id"], [("one.txt", b"same bytes")]).json()["documents"][0]
    assert elsewhere["duplicate"] is False and elsewhere["id"] != first["id"]


def test_duplicate_inside_one_request(shared_api: Any) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    response = owner.upload(ws["id"], [("a.txt", b"twice"), ("b.txt", b"twice")])
    a, b = response.json()["documents"]
    assert (a["duplicate"], b["duplicate"], a["id"]) == (False, True, b["id"])
    assert len(shared_api.s3_keys(f"workspaces/{ws['id']}/")) == 1


def wait_for_lock_waiter(api: Any, query_part: str, timeout: float = 30) -> None:
    """Until a backend of the api's database waits on a lock while running `query_part`."""
    deadline = time.monotonic() + timeout
    while not api.sql(
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE %s",
        (f"%{query_part}%",),
    ):
        assert time.monotonic() < deadline, "the upload never waited for the delete's lock"
        time.sleep(0.02)


@pytest.mark.parametrize("delete_commits", [True, False])
def test_an_upload_waits_for_a_concurrent_delete_of_its_duplicate(
    shared_api: Any, delete_commits: bool
) -> None:
    """The delete holds the document FOR UPDATE (as DELETE /api/documents/{id} does) while the
    same content is uploaded again: the upload waits, then answers a NEW document if the
    delete committed, the old one as duplicate if it rolled back; never a document that 404s."""
    owner = shared_api.user()
    ws = owner.create_workspace()["id"]
    first = owner.upload(ws, [("one.txt", b"raced bytes")]).json()["documents"][0]

    with psycopg.connect(shared_api.database_url) as deleting, ThreadPoolExecutor(1) as pool:
        deleting.execute("SELECT 1 FROM documents WHERE id = %s FOR UPDATE", (first["id"],))
        deleting.execute("DELETE FROM documents WHERE id = %s", (first["id"],))
        pending = pool.submit(owner.upload, ws, [("two.txt", b"raced bytes")])
        wait_for_lock_waiter(shared_api, "FOR KEY SHARE")
        assert not pending.done()
        if delete_commits:
            deleting.commit()
        else:
            deleting.rollback()
        response = pending.result(timeout=30)

    assert response.status_code == 201, response.text
    (document,) = response.json()["documents"]
    if delete_commits:
        assert (document["duplicate"], document["filename"]) == (False, "two.txt")
        assert document["id"] != first["id"]
        assert owner.client.get(f"/api/documents/{first['id']}").status_code == 404
    else:
        assert (document["duplicate"], document["id"]) == (True, first["id"])
    assert owner.client.get(f"/api/documents/{document['id']}").status_code == 200


def test_more_files_than_max_upload_files_is_413_and_leaves_nothing(
    api_factory: Any, multipart: Multipart
) -> None:
    api = api_factory(MAX_UPLOAD_FILES="3")
    owner = api.user()
    ws = owner.create_workspace()["id"]
    refused = owner.upload(ws, [(f"{i}.txt", f"file {i}".encode()) for i in range(4)])
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "too_many_files"
    assert_nothing_stored(api, ws)
    # Plain fields do not count; exactly the limit passes.
    body, content_type = multipart(
        [("note", None, b"x"), *[("files", f"{i}.txt", f"file {i}".encode()) for i in range(3)]]
    )
    accepted = owner.upload_raw(ws, body, content_type)
    assert accepted.status_code == 201, accepted.text
    assert len(accepted.json()["documents"]) == 3


@pytest.mark.parametrize(
    "case",
    ["not_multipart", "no_boundary", "truncated_first_part", "truncated_after_a_complete_part", "garbage"],
)
def test_bad_multipart_is_400_and_leaves_nothing(shared_api: Any, multipart: Multipart, case: str) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    good, ctype = multipart([("files", "ok.txt", b"complete part")], close=False)
    if case == "not_multipart":
        body, ctype = b'{"files": []}', "application/json"
    elif case == "no_boundary":
        body, ctype = good, "multipart/form-data"
    elif case == "truncated_first_part":
        body = good[: len(good) - 10]
    elif case == "truncated_after_a_complete_part":
        second, _ = multipart([("files", "cut.txt", b"never finished")], close=False)
        body = good + second[:-8]
    else:
        body = b"this is not a multipart body at all" * 100
    response = owner.upload_raw(ws["id"], body, ctype)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_multipart"
    assert_nothing_stored(shared_api, ws["id"])


def test_no_files_part(shared_api: Any, multipart: Multipart) -> None:
    owner = shared_api.user()
    ws = owner.create_workspace()
    body, ctype = multipart([("comment", None, b"just a field"), ("other", "a.txt", b"wrong field name")])
    response = owner.upload_raw(ws["id"], body, ctype)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_files"
    assert_nothing_stored(shared_api, ws["id"])


def test_non_member_upload_is_404_and_leaves_nothing(shared_api: Any) -> None:
    owner, stranger = shared_api.user(), shared_api.user()
    ws = owner.create_workspace()
    response = stranger.upload(ws["id"], [("a.txt", b"x" * 200_000)])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert_nothing_stored(shared_api, ws["id"])


def _consume_pending_accept(port: int) -> None:
    """TcpProxy.cut() closes its listening socket while a thread is blocked in accept();
    on Linux that accept still takes ONE more connection. Spend it here, so that the api's
    next connection is refused as it would be by a dead S3."""
    import contextlib
    import socket

    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_s3_down_during_upload_is_503_without_rows(s3_env: dict[str, str], api_factory: Any) -> None:
    from urllib.parse import urlparse

    from rag_testing.faults import TcpProxy

    target = urlparse(s3_env["S3_ENDPOINT_URL"])
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80).start()
    try:
        api = api_factory(S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")
        owner = api.user()
        ws = owner.create_workspace()
        proxy.cut()
        _consume_pending_accept(proxy.port)
        response = owner.upload(ws["id"], [("a.txt", b"hello"), ("b.md", b"# b")])
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"]["code"] == "storage_unavailable"
        assert [e["code"] for e in body["errors"]] == ["storage_unavailable"] * 2
        proxy.restore()
        assert_nothing_stored(api, ws["id"])
        # Storage is back: the same upload now works.
        assert owner.upload(ws["id"], [("a.txt", b"hello")]).status_code == 201
    finally:
        proxy.stop()
