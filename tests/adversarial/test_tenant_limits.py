"""Hostile tenants against real api processes: each limit as an attacker would hit it.

MAX_UPLOAD_FILES, MAX_CONCURRENT_UPLOADS_PER_USER, WORKSPACE_MAX_MEMBERS (concurrent adds
through two replicas), members leaving (and their event stream going quiet),
QUESTIONS_PER_MINUTE (two replicas, concurrent posts) and MAX_QUESTION_CHARS. Every
refusal is checked the way a user would: the status, the error code, Retry-After where
the contract promises it, and that nothing was stored (rows counted, bucket listed).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from rag_testing.pytest_plugin import SystemFactory
from rag_testing.system import System
from rag_testing.wsclient import EventCollector

BOUNDARY = "adversarial-boundary-5d1e"


def new_workspace(client: httpx.Client) -> str:
    response = client.post("/api/workspaces", json={"name": "target"})
    assert response.status_code == 201, response.text
    workspace: str = response.json()["id"]
    return workspace


def upload_url(workspace: str) -> str:
    return f"/api/workspaces/{workspace}/documents/upload"


def text_files(count: int, tag: str = "") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"f{i}.txt", f"file {i} {tag}\n".encode(), "text/plain")) for i in range(count)]


@pytest.fixture
def two_apis(system_factory: SystemFactory) -> System:
    """Two api replicas, no workers (nothing here needs a document parsed)."""
    system = system_factory(apis=2, workers=False, WORKSPACE_MAX_MEMBERS="10")
    return system


# --- MAX_UPLOAD_FILES -----------------------------------------------------------------


def test_101_files_in_one_upload_are_413_and_nothing_is_stored(two_apis: System) -> None:
    client = two_apis.client(uuid.uuid4())
    workspace = new_workspace(client)

    refused = client.post(upload_url(workspace), files=text_files(101))
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "too_many_files"
    # The first 100 files were streamed to S3 before the 101st part began: all deleted again.
    assert two_apis.sql("SELECT count(*) FROM documents WHERE workspace_id = %s", (workspace,)) == [(0,)]
    assert two_apis.sql("SELECT count(*) FROM parse_jobs WHERE workspace_id = %s", (workspace,)) == [(0,)]
    assert two_apis.bucket_contents(f"workspaces/{workspace}/") == ([], [])

    accepted = client.post(upload_url(workspace), files=text_files(100))
    assert accepted.status_code == 201, accepted.text
    assert len(accepted.json()["documents"]) == 100
    keys, unfinished = two_apis.bucket_contents(f"workspaces/{workspace}/")
    assert (len(keys), unfinished) == (100, [])


# --- MAX_CONCURRENT_UPLOADS_PER_USER ----------------------------------------------------


class StalledUpload:
    """An upload whose body stops after its first chunk until `release` is set."""

    def __init__(self, system: System, user: uuid.UUID, workspace: str, name: str) -> None:
        self.client = httpx.Client(
            base_url=system.api.url, headers={"Authorization": f"Bearer {system.token(user)}"}, timeout=60
        )
        self.workspace, self.name = workspace, name
        self.sent_first = threading.Event()
        self.release = threading.Event()

    def body(self) -> Iterator[bytes]:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{self.name}"\r\n'
            f"Content-Type: text/plain\r\n\r\nthe first line of {self.name}\n"
        ).encode()
        self.sent_first.set()
        self.release.wait(60)
        yield f"the rest\r\n--{BOUNDARY}--\r\n".encode()

    def run(self) -> httpx.Response:
        try:
            return self.client.post(
                upload_url(self.workspace),
                content=self.body(),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
        finally:
            self.client.close()


def test_a_fifth_concurrent_upload_of_one_user_is_429_and_others_are_unaffected(two_apis: System) -> None:
    attacker, neighbour = uuid.uuid4(), uuid.uuid4()
    client = two_apis.client(attacker)
    workspace = new_workspace(client)
    neighbour_client = two_apis.client(neighbour)
    neighbour_workspace = new_workspace(neighbour_client)

    stalled = [StalledUpload(two_apis, attacker, workspace, f"slow{i}.txt") for i in range(4)]
    with ThreadPoolExecutor(len(stalled)) as pool:
        pending = [pool.submit(s.run) for s in stalled]
        try:
            for upload in stalled:
                assert upload.sent_first.wait(30)
            time.sleep(1.0)  # the headers and first chunk are in the api: the four slots are held

            started = time.monotonic()
            fifth = client.post(upload_url(workspace), files=text_files(1, "fifth"))
            assert fifth.status_code == 429, fifth.text
            assert fifth.json()["error"]["code"] == "too_many_uploads"
            assert int(fifth.headers["Retry-After"]) >= 1
            assert time.monotonic() - started < 5
            assert not any(p.done() for p in pending)

            # Another user on the same process, and the same user on another replica, upload freely.
            assert (
                neighbour_client.post(upload_url(neighbour_workspace), files=text_files(1)).status_code == 201
            )
            other_replica = two_apis.client(attacker, two_apis.apis[1])
            assert other_replica.post(upload_url(workspace), files=text_files(1, "r2")).status_code == 201
        finally:
            for upload in stalled:
                upload.release.set()
        assert [p.result(timeout=60).status_code for p in pending] == [201] * 4

    # The slots are free again once the uploads finished.
    assert client.post(upload_url(workspace), files=text_files(1, "after")).status_code == 201
    rows = two_apis.sql(
        "SELECT filename FROM documents WHERE workspace_id = %s ORDER BY filename", (workspace,)
    )
    assert [r[0] for r in rows] == ["f0.txt", "f0.txt", "slow0.txt", "slow1.txt", "slow2.txt", "slow3.txt"]


# --- WORKSPACE_MAX_MEMBERS and leaving --------------------------------------------------


def test_the_members_cap_holds_under_concurrent_adds_through_two_replicas(two_apis: System) -> None:
    owner = uuid.uuid4()
    workspace = new_workspace(two_apis.client(owner))
    clients = [two_apis.client(owner, api) for api in two_apis.apis]
    newcomers = [uuid.uuid4() for _ in range(20)]

    def add(i: int) -> httpx.Response:
        with httpx.Client(
            base_url=two_apis.apis[i % 2].url,
            headers={"Authorization": f"Bearer {two_apis.token(owner)}"},
            timeout=60,
        ) as client:
            return client.post(f"/api/workspaces/{workspace}/members", json={"user_id": str(newcomers[i])})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(add, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 9 + [409] * 11, [r.text for r in responses]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"too_many_members"}
    assert two_apis.sql("SELECT count(*) FROM workspace_members WHERE workspace_id = %s", (workspace,)) == [
        (10,)
    ]

    # At the cap an existing member is still "already a member"; after someone leaves, one fits again.
    added = [newcomers[i] for i, r in enumerate(responses) if r.status_code == 201]
    again = clients[0].post(f"/api/workspaces/{workspace}/members", json={"user_id": str(added[0])})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_member")
    leaver = two_apis.client(added[0], two_apis.apis[1])
    assert leaver.delete(f"/api/workspaces/{workspace}/members/{added[0]}").status_code == 204
    refused = [newcomers[i] for i, r in enumerate(responses) if r.status_code == 409]
    fits = clients[1].post(f"/api/workspaces/{workspace}/members", json={"user_id": str(refused[0])})
    assert fits.status_code == 201, fits.text
    full = clients[0].post(f"/api/workspaces/{workspace}/members", json={"user_id": str(refused[1])})
    assert (full.status_code, full.json()["error"]["code"]) == (409, "too_many_members")


@pytest.mark.anyio
async def test_a_member_leaves_and_stops_receiving_the_workspace_events(two_apis: System) -> None:
    owner, member, other, stranger = (uuid.uuid4() for _ in range(4))
    owner_client = two_apis.client(owner)
    workspace = new_workspace(owner_client)
    for user in (member, other):
        added = owner_client.post(f"/api/workspaces/{workspace}/members", json={"user_id": str(user)})
        assert added.status_code == 201
    member_client = two_apis.client(member, two_apis.apis[1])

    # Members may not remove each other; strangers do not see the workspace; the last owner stays.
    assert member_client.delete(f"/api/workspaces/{workspace}/members/{other}").status_code == 403
    by_stranger = two_apis.client(stranger).delete(f"/api/workspaces/{workspace}/members/{stranger}")
    assert by_stranger.status_code == 404
    last = owner_client.delete(f"/api/workspaces/{workspace}/members/{owner}")
    assert (last.status_code, last.json()["error"]["code"]) == (409, "last_owner")

    left = member_client.delete(f"/api/workspaces/{workspace}/members/{member}")
    assert left.status_code == 204, left.text
    assert member_client.get(f"/api/workspaces/{workspace}/documents").status_code == 404
    assert workspace not in [w["id"] for w in member_client.get("/api/workspaces").json()["items"]]
    again = member_client.delete(f"/api/workspaces/{workspace}/members/{member}")
    assert again.status_code == 404  # no longer a member: the workspace is not revealed

    count_events = "SELECT count(*) FROM events WHERE user_id = %s AND payload->>'workspace_id' = %s"
    before = two_apis.sql(count_events, (member, workspace))[0][0]
    own_workspace = new_workspace(member_client)

    def created(document: str) -> Any:
        return lambda f: f.get("type") == "document.created" and f["payload"]["document_id"] == document

    async with (
        EventCollector(two_apis.api.ws_url, two_apis.token(owner)) as owner_ws,
        EventCollector(two_apis.apis[1].ws_url, two_apis.token(member)) as member_ws,
    ):
        uploaded = owner_client.post(upload_url(workspace), files=text_files(1, "after leaving"))
        assert uploaded.status_code == 201
        await owner_ws.wait_for(created(uploaded.json()["documents"][0]["id"]))
        # A user's stream is delivered in id order: once the member's own later event has
        # arrived, an event of the left workspace would have arrived before it.
        own = member_client.post(upload_url(own_workspace), files=text_files(1, "own"))
        assert own.status_code == 201
        await member_ws.wait_for(created(own.json()["documents"][0]["id"]))
        assert [e for e in member_ws.events if e["payload"].get("workspace_id") == workspace] == []
    assert two_apis.sql(count_events, (member, workspace))[0][0] == before
    assert two_apis.sql(count_events, (other, workspace))[0][0] >= 1  # the remaining member did get it


# --- QUESTIONS_PER_MINUTE and MAX_QUESTION_CHARS ---------------------------------------


def new_conversation(client: httpx.Client, workspace: str) -> str:
    response = client.post(f"/api/workspaces/{workspace}/conversations", json={"title": "questions"})
    assert response.status_code == 201, response.text
    conversation: str = response.json()["id"]
    return conversation


def ask(client: httpx.Client, conversation: str, content: object) -> httpx.Response:
    return client.post(f"/api/conversations/{conversation}/messages", json={"content": content})


def questions_of(system: System, user: uuid.UUID) -> int:
    rows = system.sql("SELECT count(*) FROM messages WHERE created_by = %s AND role = 'user'", (user,))
    return int(rows[0][0])


def answer_jobs_of(system: System, conversation: str) -> int:
    return int(
        system.sql("SELECT count(*) FROM answer_jobs WHERE conversation_id = %s", (conversation,))[0][0]
    )


def test_twenty_questions_a_minute_across_two_replicas_then_429(two_apis: System) -> None:
    asker, colleague = uuid.uuid4(), uuid.uuid4()
    clients = [two_apis.client(asker, api) for api in two_apis.apis]
    workspace = new_workspace(clients[0])
    assert (
        clients[0].post(f"/api/workspaces/{workspace}/members", json={"user_id": str(colleague)}).status_code
        == 201
    )
    conversation = new_conversation(clients[0], workspace)

    for i in range(20):
        response = ask(clients[i % 2], conversation, f"question number {i}?")
        assert response.status_code == 201, (i, response.text)
    refused = ask(clients[1], conversation, "one question too many?")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    also_refused = ask(clients[0], conversation, "and on the other replica?")
    assert also_refused.status_code == 429

    # Nothing was written for the refused questions: 20 questions, 20 answer jobs.
    assert questions_of(two_apis, asker) == 20
    assert answer_jobs_of(two_apis, conversation) == 20
    # Another user, in the same conversation, is not limited by the first one's questions.
    colleague_client = two_apis.client(colleague, two_apis.apis[1])
    assert ask(colleague_client, conversation, "may I ask one?").status_code == 201


def test_concurrent_questions_of_one_user_cannot_overshoot_the_limit(two_apis: System) -> None:
    asker = uuid.uuid4()
    workspace = new_workspace(two_apis.client(asker))
    conversation = new_conversation(two_apis.client(asker), workspace)

    def post(i: int) -> httpx.Response:
        with httpx.Client(
            base_url=two_apis.apis[i % 2].url,
            headers={"Authorization": f"Bearer {two_apis.token(asker)}"},
            timeout=60,
        ) as client:
            return ask(client, conversation, f"concurrent question {i}?")

    with ThreadPoolExecutor(26) as pool:
        statuses = sorted(r.status_code for r in pool.map(post, range(26)))
    assert statuses == [201] * 20 + [429] * 6
    assert questions_of(two_apis, asker) == 20
    assert answer_jobs_of(two_apis, conversation) == 20


@pytest.mark.parametrize("content", ["", "   \n\t  ", "x" * 4001, " " + "y" * 4001 + " "])
def test_empty_blank_or_too_long_questions_are_400_invalid_content(two_apis: System, content: str) -> None:
    asker = uuid.uuid4()
    client = two_apis.client(asker)
    conversation = new_conversation(client, new_workspace(client))
    response = ask(client, conversation, content)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_content"), response.text
    assert questions_of(two_apis, asker) == 0
    assert answer_jobs_of(two_apis, conversation) == 0

    # The longest allowed question passes (counted as sent, padding included); not a string is 422.
    assert ask(client, conversation, "  " + "z" * 3997 + "\n").status_code == 201
    assert ask(client, conversation, 42).status_code == 422
