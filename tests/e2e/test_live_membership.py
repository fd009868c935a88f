"""Membership is live (docs/contract.md §5): real api process, real WebSocket clients.

Adding and removing members publishes `workspace.member_added` / `workspace.member_removed`
to every member, the affected user included; a removed user gets nothing more of the
workspace, and a replay (resume, `GET /api/events`) shows its older events as
`event.redacted` with the same consecutive ids. No workers run: an upload then publishes
exactly `document.created` and `job.status_updated` (parse queued).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import connect

from rag_core.events import DocumentDeleted, Event, WorkspaceMemberRemoved
from rag_eventbus import publish
from rag_testing.system import System
from rag_testing.wsclient import FrameClient

pytestmark = pytest.mark.anyio

UPLOADED = ["document.created", "job.status_updated"]


@pytest.fixture
def api_only(system_factory: Any) -> System:
    system: System = system_factory(workers=False)
    return system


@asynccontextmanager
async def socket(
    system: System, user: uuid.UUID, last_event_id: int | None = None
) -> AsyncIterator[FrameClient]:
    """A WebSocket of `user`, its hello already read."""
    url = f"{system.api.ws_url}?token={system.token(user)}"
    if last_event_id is not None:
        url += f"&last_event_id={last_event_id}"
    async with connect(url, open_timeout=10, close_timeout=2) as ws:
        client = FrameClient(ws)
        assert (await client.frame())["type"] == "hello"
        yield client


def upload(system: System, user: uuid.UUID, workspace: str) -> None:
    files = [("files", (f"{uuid.uuid4()}.txt", uuid.uuid4().bytes.hex().encode(), "text/plain"))]
    response = system.client(user).post(f"/api/workspaces/{workspace}/documents/upload", files=files)
    assert response.status_code == 201, response.text


def create(system: System, user: uuid.UUID, name: str = "w") -> str:
    response = system.client(user).post("/api/workspaces", json={"name": name})
    assert response.status_code == 201, response.text
    workspace: str = response.json()["id"]
    return workspace


def add(system: System, by: uuid.UUID, workspace: str, user: uuid.UUID) -> int:
    return (
        system.client(by)
        .post(f"/api/workspaces/{workspace}/members", json={"user_id": str(user)})
        .status_code
    )


def remove(system: System, by: uuid.UUID, workspace: str, user: uuid.UUID) -> int:
    return system.client(by).delete(f"/api/workspaces/{workspace}/members/{user}").status_code


def kinds(frames: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(f["id"], f["type"]) for f in frames]


def member_payload(workspace: str, user: uuid.UUID, role: str = "member") -> dict[str, str]:
    return {"workspace_id": workspace, "user_id": str(user), "role": role}


def rest_events(system: System, user: uuid.UUID, after: int = 0) -> list[dict[str, Any]]:
    response = system.client(user).get("/api/events", params={"after": after})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_removed_member_hears_of_it_then_nothing_and_replays_are_redacted(api_only: System) -> None:
    system = api_only
    owner, bob = uuid.uuid4(), uuid.uuid4()
    shared = create(system, owner, "shared")  # owner 1: their own member_added (owner)
    own = create(system, bob, "bob's")  # bob 1
    assert add(system, owner, shared, bob) == 201  # owner 2, bob 2
    async with socket(system, owner) as owner_ws, socket(system, bob) as bob_ws:
        upload(system, owner, shared)  # 3, 4 for both
        assert kinds(await bob_ws.events(2)) == [(3, UPLOADED[0]), (4, UPLOADED[1])]
        assert remove(system, owner, shared, bob) == 204
        [removed] = await bob_ws.events(1)
        assert (removed["id"], removed["type"]) == (5, "workspace.member_removed")
        assert removed["payload"] == member_payload(shared, bob)
        owner_frames = await owner_ws.events(3)
        assert (
            owner_frames[2]["type"] == "workspace.member_removed"
            and owner_frames[2]["payload"] == removed["payload"]
        )

        upload(system, owner, shared)  # the owner's 6, 7: nothing for bob
        assert kinds(await owner_ws.events(2)) == [(6, UPLOADED[0]), (7, UPLOADED[1])]
        upload(system, bob, own)  # bob's other workspace goes on: 6, 7
        got = await bob_ws.events(2)
        assert kinds(got) == [(6, UPLOADED[0]), (7, UPLOADED[1])]
        assert {f["payload"]["workspace_id"] for f in got} == {own}
        await bob_ws.silent(0.5)

    # Replay by resume and by REST: the shared workspace's old events are redacted, ids unchanged.
    expected = [
        (1, "workspace.member_added"),  # bob's own workspace
        (2, "workspace.member_added"),  # about bob: delivered as it is
        (3, "event.redacted"),
        (4, "event.redacted"),
        (5, "workspace.member_removed"),
        (6, UPLOADED[0]),
        (7, UPLOADED[1]),
    ]
    async with socket(system, bob, last_event_id=0) as replay:
        frames = await replay.events(7)
        await replay.silent(0.3)
    assert kinds(frames) == expected
    assert frames[1]["payload"] == member_payload(shared, bob)
    for frame in frames[2:4]:
        assert set(frame) == {"id", "type", "payload", "created_at"}
        assert frame["payload"] == {"workspace_id": shared}, "no content of the workspace left"
    listed = rest_events(system, bob)
    assert listed == frames, "REST and the WebSocket replay agree, created_at included"
    assert kinds(rest_events(system, bob, after=2)) == expected[2:]
    # The owner still sees everything.
    assert [t for _, t in kinds(rest_events(system, owner))][2:4] == UPLOADED


async def test_readding_restores_live_events_and_added_reaches_every_member(api_only: System) -> None:
    system = api_only
    owner, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    shared = create(system, owner)
    assert add(system, owner, shared, bob) == 201
    async with (
        socket(system, owner) as owner_ws,
        socket(system, bob) as bob_ws,
        socket(system, carol) as carol_ws,
    ):
        # carol is connected before she belongs anywhere: her socket follows her membership.
        assert add(system, owner, shared, carol) == 201
        for ws in (owner_ws, bob_ws, carol_ws):
            [added] = await ws.events(1)
            assert added["type"] == "workspace.member_added"
            assert added["payload"] == member_payload(shared, carol)
        assert remove(system, owner, shared, bob) == 204
        assert (await bob_ws.events(1))[0]["type"] == "workspace.member_removed"
        upload(system, owner, shared)
        [bob_gone, *uploaded] = await carol_ws.events(3)
        assert bob_gone["type"] == "workspace.member_removed" and bob_gone["payload"] == member_payload(
            shared, bob
        )
        assert [f["type"] for f in uploaded] == UPLOADED
        await bob_ws.silent(0.3)

        assert add(system, owner, shared, bob) == 201  # back: member_added, then live events again
        [back] = await bob_ws.events(1)
        assert back["type"] == "workspace.member_added" and back["payload"] == member_payload(shared, bob)
        upload(system, owner, shared)
        again = await bob_ws.events(2)
        assert [f["type"] for f in again] == UPLOADED and again[0]["payload"]["filename"].endswith(".txt")
        assert kinds(again) == [(back["id"] + 1, UPLOADED[0]), (back["id"] + 2, UPLOADED[1])]
    # A member again: the replay hides nothing (the contract redacts only workspaces left).
    types = [t for _, t in kinds(rest_events(system, bob))]
    assert "event.redacted" not in types
    assert types == [
        "workspace.member_added",
        "workspace.member_added",  # carol
        "workspace.member_removed",
        "workspace.member_added",
        *UPLOADED,
    ]


async def test_refused_membership_changes_publish_nothing(api_only: System) -> None:
    system = api_only
    owner, bob, stranger, outsider = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    shared = create(system, owner)
    assert add(system, owner, shared, bob) == 201
    position = {u: len(rest_events(system, u)) for u in (owner, bob)}
    async with socket(system, owner) as owner_ws, socket(system, bob) as bob_ws:
        assert add(system, bob, shared, outsider) == 403  # a member is not an owner
        assert remove(system, bob, shared, owner) == 403
        assert add(system, stranger, shared, outsider) == 404
        assert remove(system, stranger, shared, bob) == 404
        assert remove(system, owner, shared, outsider) == 404  # not a member: nothing to remove
        assert add(system, owner, shared, bob) == 409  # already a member
        assert remove(system, owner, shared, owner) == 409  # the last owner
        await owner_ws.silent(0.5)
        await bob_ws.silent(0.1)
    assert {u: len(rest_events(system, u)) for u in (owner, bob)} == position
    assert rest_events(system, outsider) == rest_events(system, stranger) == []
    # Leaving is allowed, and the one who leaves hears of it like everyone else.
    async with socket(system, bob) as bob_ws:
        assert remove(system, bob, shared, bob) == 204
        [left] = await bob_ws.events(1)
        assert left["type"] == "workspace.member_removed" and left["payload"] == member_payload(shared, bob)


async def test_an_event_that_raced_the_removal_never_reaches_the_removed_member(api_only: System) -> None:
    """A transaction publishing to the workspace while the removal is open waits for the
    workspace's stream row, which the removal's publish holds to its commit, and reads the
    members only then: the removed user is not among them, live or in replay; the owner,
    still a member, gets the event after `member_removed`."""
    system = api_only
    owner, bob = uuid.uuid4(), uuid.uuid4()
    shared = create(system, owner)
    assert add(system, owner, shared, bob) == 201
    dsn = system.env["DATABASE_URL"]
    raced = Event.of(DocumentDeleted(workspace_id=uuid.UUID(shared), document_id=uuid.uuid4()))
    async with socket(system, bob) as bob_ws, socket(system, owner) as owner_ws:
        async with await psycopg.AsyncConnection.connect(dsn) as removal:
            # What the DELETE route does, held open: publish (locks the workspace's stream row), delete.
            gone = WorkspaceMemberRemoved(workspace_id=uuid.UUID(shared), user_id=bob, role="member")
            await publish(removal, [Event.of(gone)])
            await removal.execute(
                "DELETE FROM workspace_members WHERE workspace_id = %s AND user_id = %s", (shared, bob)
            )

            async def racer() -> None:
                async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
                    await publish(conn, [raced])  # waits for the workspace's row

            racing = asyncio.create_task(racer())
            await asyncio.sleep(0.5)
            assert not racing.done(), "the racer waits for the removal"
            await removal.commit()
        await asyncio.wait_for(racing, 10)
        assert kinds(await bob_ws.events(1)) == [(2, "workspace.member_removed")]
        owner_frames = await owner_ws.events(2)
        assert [f["type"] for f in owner_frames] == ["workspace.member_removed", "document.deleted"]
        await bob_ws.silent(0.5)
    assert kinds(rest_events(system, bob))[1:] == [(2, "workspace.member_removed")]
