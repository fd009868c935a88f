"""Workspaces and members: shapes, validation, owner-only rules, leaving, last owner, members cap."""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any

import pytest


def test_create_and_list_workspaces(shared_api: Any) -> None:
    alice, bob = shared_api.user(), shared_api.user()
    created = alice.client.post("/api/workspaces", json={"name": "  Research  "})
    assert created.status_code == 201
    ws = created.json()
    assert set(ws) == {"id", "name", "role", "created_at"}
    assert (ws["name"], ws["role"]) == ("Research", "owner")
    second = alice.create_workspace("Second")
    listed = alice.client.get("/api/workspaces").json()
    assert [w["id"] for w in listed["items"]] == [ws["id"], second["id"]]
    assert listed["items"][0] == ws
    assert bob.client.get("/api/workspaces").json() == {"items": []}
    assert alice.add_member(ws["id"], bob.id).status_code == 201
    [seen] = bob.client.get("/api/workspaces").json()["items"]
    assert (seen["id"], seen["role"]) == (ws["id"], "member")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[]", 422, "validation_error"),
        (b"{}", 422, "validation_error"),
        (b'{"name": ""}', 422, "validation_error"),
        (b'{"name": "   "}', 422, "validation_error"),
        (b'{"name": 42}', 422, "validation_error"),
        (b'{"name": "' + b"x" * 201 + b'"}', 422, "validation_error"),
    ],
)
def test_workspace_validation(shared_api: Any, body: bytes, status: int, code: str) -> None:
    user = shared_api.user()
    response = user.client.post("/api/workspaces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert user.client.get("/api/workspaces").json()["items"] == []


def test_json_body_too_large(shared_api: Any) -> None:
    user = shared_api.user()
    response = user.client.post("/api/workspaces", json={"name": "x" * 100_000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_member_management_rules(shared_api: Any) -> None:
    owner, member, stranger, newcomer = (shared_api.user() for _ in range(4))
    ws = owner.create_workspace()["id"]

    added = owner.add_member(ws, member.id)
    assert added.status_code == 201
    assert added.json() == {"workspace_id": ws, "user_id": str(member.id), "role": "member"}
    again = owner.add_member(ws, member.id)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_member")

    # A member may not manage members (403); a stranger does not see the workspace (404).
    by_member = member.add_member(ws, newcomer.id)
    assert (by_member.status_code, by_member.json()["error"]["code"]) == (403, "forbidden")
    by_stranger = stranger.add_member(ws, newcomer.id)
    assert (by_stranger.status_code, by_stranger.json()["error"]["code"]) == (404, "not_found")
    assert member.client.delete(f"/api/workspaces/{ws}/members/{owner.id}").status_code == 403
    assert stranger.client.delete(f"/api/workspaces/{ws}/members/{member.id}").status_code == 404
    assert owner.add_member(uuid.uuid4(), newcomer.id).status_code == 404

    # Validation of the member body.
    for body in ({"user_id": "nope"}, {}, {"user_id": str(newcomer.id), "role": "admin"}):
        response = owner.client.post(f"/api/workspaces/{ws}/members", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error"), body

    # The last owner cannot leave; with a second owner it can.
    last = owner.client.delete(f"/api/workspaces/{ws}/members/{owner.id}")
    assert (last.status_code, last.json()["error"]["code"]) == (409, "last_owner")
    assert owner.add_member(ws, newcomer.id, role="owner").json()["role"] == "owner"
    assert owner.client.delete(f"/api/workspaces/{ws}/members/{member.id}").status_code == 204
    missing = owner.client.delete(f"/api/workspaces/{ws}/members/{member.id}")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert owner.client.delete(f"/api/workspaces/{ws}/members/{owner.id}").status_code == 204
    # The removed users no longer see it.
    assert member.client.get(f"/api/workspaces/{ws}/documents").status_code == 404
    assert owner.client.get(f"/api/workspaces/{ws}/documents").status_code == 404
    assert newcomer.client.get(f"/api/workspaces/{ws}/documents").status_code == 200
    remaining = shared_api.sql("SELECT user_id, role FROM workspace_members WHERE workspace_id = %s", (ws,))
    assert [(str(u), r) for u, r in remaining] == [(str(newcomer.id), "owner")]


def test_any_member_may_leave_but_not_remove_others(shared_api: Any) -> None:
    owner, member, other, stranger = (shared_api.user() for _ in range(4))
    ws = owner.create_workspace()["id"]
    for user in (member, other):
        assert owner.add_member(ws, user.id).status_code == 201

    forbidden = member.client.delete(f"/api/workspaces/{ws}/members/{other.id}")
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
    assert stranger.client.delete(f"/api/workspaces/{ws}/members/{stranger.id}").status_code == 404
    assert member.client.delete(f"/api/workspaces/{ws}/members/{member.id}").status_code == 204
    assert member.client.get(f"/api/workspaces/{ws}/documents").status_code == 404
    # Gone: leaving again does not reveal the workspace.
    assert member.client.delete(f"/api/workspaces/{ws}/members/{member.id}").status_code == 404
    # A second owner may leave; the last one may not.
    assert owner.add_member(ws, other.id, role="owner").status_code == 409  # already a member
    promoted = shared_api.user()
    assert owner.add_member(ws, promoted.id, role="owner").status_code == 201
    assert promoted.client.delete(f"/api/workspaces/{ws}/members/{promoted.id}").status_code == 204
    last = owner.client.delete(f"/api/workspaces/{ws}/members/{owner.id}")
    assert (last.status_code, last.json()["error"]["code"]) == (409, "last_owner")
    remaining = shared_api.sql("SELECT user_id FROM workspace_members WHERE workspace_id = %s", (ws,))
    assert {str(r[0]) for r in remaining} == {str(owner.id), str(other.id)}


def test_workspace_max_members(api_factory: Any) -> None:
    api = api_factory(WORKSPACE_MAX_MEMBERS="3")
    owner = api.user()
    ws = owner.create_workspace()["id"]
    users = [uuid.uuid4() for _ in range(3)]
    assert [owner.add_member(ws, u).status_code for u in users[:2]] == [201, 201]
    full = owner.add_member(ws, users[2])
    assert (full.status_code, full.json()["error"]["code"]) == (409, "too_many_members")
    assert api.sql("SELECT count(*) FROM workspace_members WHERE workspace_id = %s", (ws,)) == [(3,)]
    # Another workspace has its own count.
    assert owner.add_member(owner.create_workspace("second")["id"], users[2]).status_code == 201


def test_max_workspaces_per_user_holds_under_concurrent_creates(api_factory: Any) -> None:
    api = api_factory(MAX_WORKSPACES_PER_USER="5")
    user, other = api.user(), api.user()
    assert user.create_workspace("first")["id"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: user.client.post("/api/workspaces", json={"name": f"w{n}"}), range(8))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 4 + [409] * 4, statuses
    refused = next(a for a in answers if a.status_code == 409).json()["error"]
    assert refused["code"] == "too_many_workspaces" and "5" in refused["message"]
    assert api.sql("SELECT count(*) FROM workspaces WHERE created_by = %s", (user.id,)) == [(5,)]
    # Being added to other people's workspaces does not count, and other users are unaffected.
    theirs = other.create_workspace("theirs")["id"]
    assert other.add_member(theirs, user.id).status_code == 201
    assert other.create_workspace("second")["id"]
    assert len(user.client.get("/api/workspaces").json()["items"]) == 6
