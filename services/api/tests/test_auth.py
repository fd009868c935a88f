"""Bad tokens are 401 `unauthorized` on every /api route, and change nothing."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import jwt
import orjson
import pytest

from rag_core.tokens import mint_token


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def bad_tokens(secret: str) -> dict[str, str | None]:
    user = str(uuid.uuid4())
    now = int(time.time())
    return {
        "missing": None,
        "expired": jwt.encode({"sub": user, "exp": now - 60}, secret, algorithm="HS256"),
        "wrong_signature": mint_token(uuid.UUID(user), "another-secret-" + "z" * 64),
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': user, 'exp': now + 600})}.",
        "alg_hs512": jwt.encode({"sub": user, "exp": now + 600}, secret, algorithm="HS512"),
        "malformed": "not-a-jwt",
        "three_garbage_parts": "abc.def.ghi",
        "no_exp": jwt.encode({"sub": user}, secret, algorithm="HS256"),
        "sub_not_uuid": jwt.encode({"sub": "alice", "exp": now + 600}, secret, algorithm="HS256"),
    }


CASES = list(bad_tokens("x" * 64))


@pytest.mark.parametrize("case", CASES)
def test_bad_tokens_are_refused_everywhere(shared_api: Any, case: str) -> None:
    token = bad_tokens(shared_api.env["JWT_SECRET"])[case]
    owner = shared_api.user()
    ws = owner.create_workspace()
    doc = owner.upload(ws["id"], [("a.txt", b"auth test " + case.encode())]).json()["documents"][0]
    client = shared_api.client(token)
    requests = [
        ("GET", "/api/workspaces", None),
        ("POST", "/api/workspaces", {"json": {"name": "sneaky"}}),
        ("POST", f"/api/workspaces/{ws['id']}/members", {"json": {"user_id": str(uuid.uuid4())}}),
        ("GET", f"/api/workspaces/{ws['id']}/documents", None),
        (
            "POST",
            f"/api/workspaces/{ws['id']}/documents/upload",
            {"files": [("files", ("x.txt", b"x" * 300_000))]},
        ),
        ("GET", f"/api/documents/{doc['id']}", None),
        ("GET", f"/api/documents/{doc['id']}/jobs", None),
        ("POST", f"/api/documents/{doc['id']}/reprocess", None),
        ("DELETE", f"/api/documents/{doc['id']}", None),
        ("GET", "/api/events?after=0", None),
    ]
    for method, path, kwargs in requests:
        response = client.request(method, path, **(kwargs or {}))
        assert response.status_code == 401, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "unauthorized" and error["message"], (method, path)
        assert response.headers["content-type"].startswith("application/json")
    # Nothing changed: still one document, one object, one workspace.
    assert shared_api.sql("SELECT count(*) FROM documents WHERE workspace_id = %s", (ws["id"],))[0][0] == 1
    assert len(shared_api.s3_keys(f"workspaces/{ws['id']}/")) == 1
    assert shared_api.sql("SELECT count(*) FROM workspaces WHERE name = 'sneaky'")[0][0] == 0


def test_other_auth_schemes_are_refused(shared_api: Any) -> None:
    good = shared_api.token(uuid.uuid4())
    for header in (f"Basic {good}", good, f"Bearer{good}", "Bearer"):
        response = shared_api.client().get("/api/workspaces", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_token_in_query_string_is_not_accepted_for_rest(shared_api: Any) -> None:
    good = shared_api.token(uuid.uuid4())
    assert shared_api.client().get(f"/api/workspaces?token={good}").status_code == 401


def test_tokens_never_appear_in_logs(shared_api: Any) -> None:
    token = shared_api.token(uuid.uuid4())
    shared_api.client(token).get("/api/workspaces")
    shared_api.client("bad.to.ken").get("/api/workspaces")
    text = shared_api.log_text()
    assert token not in text and token.split(".")[2] not in text and "bad.to.ken" not in text


def test_refusals_before_the_body_is_read_keep_the_connection_usable(shared_api: Any) -> None:
    """A 401 is sent only after the unread body was drained: no reset, keep-alive intact."""
    client = shared_api.client("not-a-token")
    for _ in range(20):
        refused = client.post("/api/workspaces", json={"name": "n" * 50_000})
        assert refused.status_code == 401
        upload = client.post(
            f"/api/workspaces/{uuid.uuid4()}/documents/upload", files=[("files", ("a.txt", b"a" * 3_000_000))]
        )
        assert upload.status_code == 401
        assert client.get("/api/workspaces").status_code == 401
