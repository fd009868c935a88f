"""The OpenAPI document against a live api: served, valid OpenAPI 3.1, and true under fuzzing.

One api on hypercorn over a real Postgres and a real S3 (moto server), from rag_testing's
`system_factory`; no workers (the HTTP contract is the api's: uploads are queued, never parsed).
The fuzz run is the schemathesis CLI, as an operator would run it against their own
deployment: every operation of `GET /openapi.json` with its default checks (no 5xx, status
codes documented, content types and response schemas and headers conformant, negative data
rejected, unsupported methods answered 405, auth not ignored, ...), the examples, coverage,
fuzzing and stateful phases (the document's links chain create workspace -> upload -> get
document, create conversation -> post message), with a real token of a user who owns a workspace
holding a document, a conversation and a second member, so that path parameters can be real ids.

Bounded: at most FUZZ_EXAMPLES cases per operation and FUZZ_MAX_SECONDS for the whole run.
The limits that would turn most of the run into 429s are raised for this api only; the 429
answers stay documented (services/api/tests/test_openapi_drift.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from rag_api.api_docs import openapi_document
from rag_testing.system import System

FUZZ_EXAMPLES = 25
FUZZ_MAX_SECONDS = 240
# The SSE stream never ends by itself: a fuzzer would wait on every 200 until its timeout.
# Its refusals are tested in services/api/tests/test_realtime_sse.py.
NOT_FUZZED = ["eventStream"]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# Generous enough that a few hundred fuzz cases are not refused for volume.
ROOMY_LIMITS = {
    "QUESTIONS_PER_MINUTE": "100000",
    "MAX_CONCURRENT_UPLOADS_PER_USER": "64",
    "MAX_WORKSPACES_PER_USER": "100000",
}


@pytest.fixture
def api(system_factory: Any) -> System:
    system: System = system_factory(workers=False, **ROOMY_LIMITS)
    return system


def test_the_served_document_is_valid_openapi_3_1_and_the_packaged_one(api: System) -> None:
    response = httpx.get(f"{api.api.url}/openapi.json", timeout=30)  # no token: it is public
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)
    assert document == json.loads(json.dumps(openapi_document()))


def test_the_docs_page_is_served_with_its_assets_by_the_api(api: System) -> None:
    with httpx.Client(base_url=api.api.url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "//" not in page.text.replace("<!doctype", "")  # no absolute URL: nothing from elsewhere
        for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/init.js"):
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 30, asset
        assert client.get("/docs/assets/nothing.js").status_code == 404


def owned_world(api: System, user: uuid.UUID) -> dict[str, str]:
    """Real ids for the path parameters: the user's workspace, two documents, a conversation and
    two members (one document and one member for the deleting operations, so that the others
    keep theirs)."""
    ids: dict[str, str] = {}
    with api.client(user) as client:
        workspace = client.post("/api/workspaces", json={"name": "fuzzed"}).json()["id"]
        for key, text in (
            ("document_id", b"The quick brown fox.\n"),
            ("deleted_document_id", b"Lazy dogs.\n"),
        ):
            files = [("files", ("notes.txt", text, "text/plain"))]
            upload = client.post(f"/api/workspaces/{workspace}/documents/upload", files=files)
            assert upload.status_code == 201, upload.text
            ids[key] = upload.json()["documents"][0]["id"]
        conversation = client.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"})
        assert conversation.status_code == 201, conversation.text
        for key in ("user_id", "removed_user_id"):
            ids[key] = str(uuid.uuid4())
            added = client.post(f"/api/workspaces/{workspace}/members", json={"user_id": ids[key]})
            assert added.status_code == 201, added.text
    return ids | {"workspace_id": workspace, "conversation_id": conversation.json()["id"]}


# Where a schema cannot say which of its valid values the api accepts, the positive-data check
# is told the refusals the contract prescribes for them (and nothing else): a `cursor` is any
# string the api returned (another one is 400 invalid_cursor), and an upload's type is decided
# from the file's bytes and name (400 empty_file, 413 file_too_large, 415 unsupported_media_type);
# search filters whose `created_after` is later than their `created_before` are 400
# invalid_parameter, in the query and in a question's `filters`.
CONTENT_DEPENDENT = {
    "listDocuments": [200, 400, 401, 404],
    "uploadDocuments": [201, 400, 401, 404, 413, 415],
    "searchWorkspace": [200, 400, 401, 404],
    "postMessage": [201, 400, 401, 404],
}


def schemathesis_config(ids: dict[str, str] | None) -> str:
    """schemathesis.toml: with `ids`, every path parameter is a real one (the deleting operations
    get their own); without, the stateful phase takes them from the responses (the links)."""
    lines = []
    if ids is not None:
        lines += ["[parameters]"]
        lines += [
            f'"path.{name}" = "{ids[name]}"'
            for name in ("workspace_id", "document_id", "conversation_id", "user_id")
        ]
        lines += ["", "[[operations]]", 'include-operation-id = "deleteDocument"']
        lines += [f'parameters = {{ "path.document_id" = "{ids["deleted_document_id"]}" }}']
        lines += ["", "[[operations]]", 'include-operation-id = "removeMember"']
        lines += [f'parameters = {{ "path.user_id" = "{ids["removed_user_id"]}" }}']
    for operation, statuses in CONTENT_DEPENDENT.items():
        lines += ["", "[[operations]]", f'include-operation-id = "{operation}"']
        lines += [f"checks.positive_data_acceptance.expected-statuses = {statuses}"]
    return "\n".join(lines) + "\n"


def run_schemathesis(
    api: System, user: uuid.UUID, where: Path, phases: str, ids: dict[str, str] | None, seconds: int
) -> str:
    """One bounded schemathesis run; its whole output (also saved under `where`)."""
    where.mkdir()
    config = where / "schemathesis.toml"
    config.write_text(schemathesis_config(ids), encoding="utf-8")
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{api.api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {api.token(user)}",
        "--phases",
        phases,
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--max-time",
        str(seconds),
        # One worker: with two threads, hypothesis's concurrent ast.parse of filter lambdas hits
        # CPython 3.11's "AST constructor recursion depth mismatch" SystemError (a race in the
        # parser's recursion counter between threads) and the run ends in an error.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--seed",
        "16",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-dir",
        str(where / "report"),
        *[arg for op in NOT_FUZZED for arg in ("--exclude-operation-id", op)],
    ]
    # cwd: schemathesis keeps a cache (.schemathesis/) where it runs; never in the repository.
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 240, check=False, cwd=where
    )
    output = run.stdout + run.stderr
    (where / "schemathesis.txt").write_text(output, encoding="utf-8")
    print(output)  # the summary: operations, phases, cases, failures (pytest -s, or the saved file)
    assert run.returncode == 0, output[-20000:]
    return output


DESCRIBED = sum(1 for item in openapi_document()["paths"].values() for m in item if m != "parameters")
# schemathesis leaves out the operation that serves the document itself (GET /openapi.json,
# checked by the first test here) and counts it in neither number.
FUZZED = DESCRIBED - 1 - len(NOT_FUZZED)


@pytest.mark.timeout(FUZZ_MAX_SECONDS + 600)
def test_schemathesis_finds_nothing_against_the_live_api(api: System, tmp_path: Path) -> None:
    user = uuid.uuid4()
    ids = owned_world(api, user)
    generated = run_schemathesis(
        api, user, tmp_path / "generated", "examples,coverage,fuzzing", ids, FUZZ_MAX_SECONDS * 3 // 5
    )
    assert f"Selected: {FUZZED}/{DESCRIBED - 1}" in generated and f"Tested: {FUZZED}" in generated, generated[
        -3000:
    ]
    stateful = run_schemathesis(api, user, tmp_path / "stateful", "stateful", None, FUZZ_MAX_SECONDS * 2 // 5)
    assert "Stateful" in stateful, stateful[-3000:]
