"""RagClient against a real api: every §4 route round-trips, and every error is an ApiError
with the contract's status, code, message and extra fields."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rag_engine_client import ApiError, RagClient
from rag_testing.system import System

pytestmark = pytest.mark.anyio


async def test_rest_round_trip(api: System, tmp_path: Path) -> None:
    owner, member = uuid.uuid4(), uuid.uuid4()
    note = tmp_path / "notes.txt"
    note.write_text("salmon swim upstream to spawn\n")
    async with RagClient(api.api.url, api.token(owner)) as client:
        workspace = await client.create_workspace("fish")
        assert (workspace["name"], workspace["role"]) == ("fish", "owner")
        assert [w["id"] for w in await client.list_workspaces()] == [workspace["id"]]

        added = await client.add_member(workspace["id"], str(member))
        assert added == {"workspace_id": workspace["id"], "user_id": str(member), "role": "member"}

        uploaded = await client.upload(
            workspace["id"], [note, ("trout.md", b"# trout\nrivers", "text/markdown")]
        )
        assert [d["filename"] for d in uploaded["documents"]] == ["notes.txt", "trout.md"]
        assert [d["content_type"] for d in uploaded["documents"]] == ["text/plain", "text/markdown"]
        assert uploaded["errors"] == []
        first = uploaded["documents"][0]
        assert first["status"] == "queued" and "parse_job_id" in first

        page = await client.list_documents(workspace["id"], limit=1)
        assert len(page["items"]) == 1 and page["next_cursor"] is not None
        rest = await client.list_documents(workspace["id"], cursor=page["next_cursor"])
        assert {d["id"] for d in page["items"] + rest["items"]} == {d["id"] for d in uploaded["documents"]}
        assert (await client.get_document(first["id"]))["sha256"] == first["sha256"]
        jobs = await client.list_jobs(first["id"])
        assert [(j["job_type"], j["status"], j["id"]) for j in jobs] == [
            ("parse", "queued", first["parse_job_id"])
        ]

        assert await client.search(workspace["id"], "salmon") == []  # nothing ingested: no worker runs

        conversation = await client.create_conversation(workspace["id"], "questions")
        assert [c["id"] for c in await client.list_conversations(workspace["id"])] == [conversation["id"]]
        posted = await client.post_message(conversation["id"], "where do salmon spawn?")
        assert (posted["message"]["role"], posted["reply"]["status"]) == ("user", "pending")
        messages = await client.list_messages(conversation["id"])
        assert [m["id"] for m in messages] == [posted["message"]["id"], posted["reply"]["id"]]

        page_of_events = await client.events(after=0, limit=1000)
        types = [e["type"] for e in page_of_events["items"]]
        assert types[0] == "workspace.member_added" and "document.created" in types
        assert [e["id"] for e in page_of_events["items"]] == list(range(1, len(types) + 1))
        assert page_of_events["has_more"] is False and len(page_of_events["epoch"]) == 20

        await client.delete_document(uploaded["documents"][1]["id"])
        await client.remove_member(workspace["id"], str(member))

    async with RagClient(api.api.url, api.token(member)) as removed:
        assert await removed.list_workspaces() == []


async def test_errors_carry_status_code_message_and_extra_fields(api: System) -> None:
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    async with RagClient(api.api.url, api.token(owner)) as client:
        workspace = await client.create_workspace("w")

        with pytest.raises(ApiError) as missing:
            await client.get_document(str(uuid.uuid4()))
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert missing.value.message

        with pytest.raises(ApiError) as empty_query:
            await client.search(workspace["id"], "")
        assert (empty_query.value.status, empty_query.value.code) == (400, "invalid_query")

        with pytest.raises(ApiError) as bad_k:
            await client.search(workspace["id"], "x", k=51)
        assert (bad_k.value.status, bad_k.value.code) == (400, "invalid_parameter")

        # Filters travel as repeated parameters: two ids are accepted, a bad type is refused.
        ids = [str(uuid.uuid4()), str(uuid.uuid4())]
        assert await client.search(workspace["id"], "x", filters={"document_id": ids}) == []
        with pytest.raises(ApiError) as bad_type:
            await client.search(workspace["id"], "x", filters={"content_type": ["image/gif"]})
        assert (bad_type.value.status, bad_type.value.code) == (400, "invalid_parameter")
        asked = await client.create_conversation(workspace["id"], "filters")
        with pytest.raises(ApiError) as bad_window:
            window = {"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}
            await client.post_message(asked["id"], "why?", filters=window)
        assert (bad_window.value.status, bad_window.value.code) == (400, "invalid_parameter")

        with pytest.raises(ApiError) as twice:
            await client.add_member(workspace["id"], str(owner))
        assert (twice.value.status, twice.value.code) == (409, "already_member")

        with pytest.raises(ApiError) as refused:
            await client.upload(workspace["id"], [("empty.txt", b"", "text/plain")])
        assert (refused.value.status, refused.value.code) == (400, "empty_file")
        assert [e["filename"] for e in refused.value.extra["errors"]] == ["empty.txt"]

        with pytest.raises(ApiError) as other_epoch:
            await client.events(after=1, epoch="0" * 20)
        assert (other_epoch.value.status, other_epoch.value.code) == (409, "resync_required")
        current = (await client.events())["epoch"]
        assert other_epoch.value.extra["epoch"] == current
        assert isinstance(other_epoch.value.extra["oldest_event_id"], int)

        with pytest.raises(ApiError) as blank:
            await client.post_message((await client.create_conversation(workspace["id"], "c"))["id"], "   ")
        assert (blank.value.status, blank.value.code) == (400, "invalid_content")

    async with RagClient(api.api.url, api.token(stranger)) as outsider:
        with pytest.raises(ApiError) as hidden:
            await outsider.list_documents(workspace["id"])
        assert hidden.value.status == 404  # another workspace's resources look absent

    async with RagClient(api.api.url, "not-a-jwt") as anonymous:
        with pytest.raises(ApiError) as unauthorized:
            await anonymous.list_workspaces()
        assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")


async def test_a_non_json_error_page_is_still_an_api_error(api: System) -> None:
    async with RagClient(api.api.url + "/nowhere", api.token(uuid.uuid4())) as client:
        with pytest.raises(ApiError) as lost:
            await client.list_workspaces()
    assert lost.value.status == 404 and lost.value.code in ("not_found", "http_404")


async def test_the_token_provider_is_asked_for_every_request(api: System) -> None:
    user = uuid.uuid4()
    asked: list[str] = []

    async def provider() -> str:
        token = api.token(user) if asked else "expired-or-garbage"
        asked.append(token)
        return token

    async with RagClient(api.api.url, provider) as client:
        with pytest.raises(ApiError):
            await client.list_workspaces()
        assert await client.list_workspaces() == []
    assert len(asked) == 2
