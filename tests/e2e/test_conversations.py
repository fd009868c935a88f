"""Conversations end to end: grounded answers streamed live to every member.

Real api replicas and workers, a real WebSocket client per member, and for the
`openai` provider a small OpenAI-compatible server (rag_testing.fake_llm).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from rag_testing.fake_llm import fake_llm
from rag_testing.system import System, start_system
from rag_testing.wsclient import EventCollector

pytestmark = pytest.mark.anyio

HARBOUR = (
    b"The harbour warehouse ledger.\n\n"
    b"In March the quartermaster counted four hundred barrels of salted cod in the harbour warehouse.\n\n"
    b"The roof was repaired in April after a storm.\n"
)
OTHER = b"Bees communicate the direction of flowers with a waggle dance.\n"


def ingest(system: System, api: httpx.Client, workspace: str, files: dict[str, bytes]) -> dict[str, str]:
    response = api.post(
        f"/api/workspaces/{workspace}/documents/upload",
        files=[("files", (name, data, "text/plain")) for name, data in files.items()],
    )
    assert response.status_code == 201, response.text
    ids = {d["filename"]: d["id"] for d in response.json()["documents"]}
    deadline = time.monotonic() + 60
    for document_id in ids.values():
        while api.get(f"/api/documents/{document_id}").json()["status"] != "ingested":
            assert time.monotonic() < deadline, system.logs()
            time.sleep(0.05)
    return ids


def message_events(ws: EventCollector, conversation: str) -> list[dict[str, Any]]:
    return [e for e in ws.events if e["payload"].get("conversation_id") == conversation]


def final(ws: EventCollector, message_id: str) -> bool:
    return any(
        e["type"] == "message.status_updated"
        and e["payload"]["message_id"] == message_id
        and e["payload"]["status"] in ("completed", "failed")
        for e in ws.events
    )


def setup_workspace(system: System) -> tuple[uuid.UUID, uuid.UUID, httpx.Client, str]:
    owner, member = uuid.uuid4(), uuid.uuid4()
    api = system.client(owner)
    workspace = api.post("/api/workspaces", json={"name": "talk"}).json()["id"]
    assert api.post(f"/api/workspaces/{workspace}/members", json={"user_id": str(member)}).status_code == 201
    return owner, member, api, workspace


async def test_two_members_watch_a_grounded_answer_stream_and_rest_agrees(system: System) -> None:
    owner, member, api, workspace = setup_workspace(system)
    stranger = uuid.uuid4()
    docs = ingest(system, api, workspace, {"harbour.txt": HARBOUR, "bees.txt": OTHER})
    conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "stock"}).json()[
        "id"
    ]

    async with (
        EventCollector(system.api.ws_url, system.token(owner)) as owner_ws,
        EventCollector(system.api.ws_url, system.token(member)) as member_ws,
        EventCollector(system.api.ws_url, system.token(stranger)) as stranger_ws,
    ):
        asked = system.client(member).post(
            f"/api/conversations/{conversation}/messages",
            json={"content": "How many barrels did the quartermaster count in the warehouse?"},
        )
        assert asked.status_code == 201, asked.text
        reply_id = asked.json()["reply"]["id"]
        assert asked.json()["reply"]["status"] == "pending"
        await owner_ws.wait_until(lambda: final(owner_ws, reply_id))
        await member_ws.wait_until(lambda: final(member_ws, reply_id))

        for ws in (owner_ws, member_ws):
            events = message_events(ws, conversation)
            shape = [(e["type"], e["payload"].get("role"), e["payload"]["status"]) for e in events]
            assert shape[0] == ("message.created", "user", "completed")
            assert shape[1] == ("message.created", "assistant", "pending")
            assert shape[-1] == ("message.status_updated", None, "completed")
            streaming = shape[2:-1]
            assert streaming and all(s == ("message.status_updated", None, "streaming") for s in streaming)
            # Each streaming event carries the text so far: the deltas add up to it.
            so_far = ""
            for e in events[2:-1]:
                so_far += e["payload"]["delta"]
                assert e["payload"]["content"] == so_far
        assert stranger_ws.events == []

        done = message_events(owner_ws, conversation)[-1]["payload"]
        assert "four hundred barrels" in done["content"]
        assert [c["filename"] for c in done["citations"]] == ["harbour.txt"]
        assert done["citations"][0]["document_id"] == docs["harbour.txt"]

    listed = api.get(f"/api/conversations/{conversation}/messages").json()["items"]
    assert [(m["role"], m["status"]) for m in listed] == [("user", "completed"), ("assistant", "completed")]
    assert listed[1]["content"] == done["content"]
    assert listed[1]["citations"] == done["citations"]

    stranger_api = system.client(stranger)
    assert stranger_api.get(f"/api/conversations/{conversation}/messages").status_code == 404
    assert (
        stranger_api.post(f"/api/conversations/{conversation}/messages", json={"content": "hi"}).status_code
        == 404
    )
    assert stranger_api.get(f"/api/workspaces/{workspace}/conversations").status_code == 404


async def test_openai_provider_streams_coalesced_deltas_after_two_429s(
    database_url: str, s3_env: dict[str, str], tmp_path: Any
) -> None:
    answer = "The quartermaster counted four hundred barrels of salted cod [1]. " * 6
    with fake_llm(["429", "429", "stream"], answer, chunk_chars=2) as llm:
        system = start_system(
            database_url, s3_env, tmp_path, LLM_PROVIDER="openai", LLM_BASE_URL=llm.url, LLM_MODEL="fake"
        )
        try:
            owner, _, api, workspace = setup_workspace(system)
            ingest(system, api, workspace, {"harbour.txt": HARBOUR})
            conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
                "id"
            ]
            async with EventCollector(system.api.ws_url, system.token(owner)) as ws:
                reply = api.post(f"/api/conversations/{conversation}/messages", json={"content": "barrels?"})
                reply_id = reply.json()["reply"]["id"]
                await ws.wait_until(lambda: final(ws, reply_id))
                events = message_events(ws, conversation)
        finally:
            system.stop()
    assert len(llm.requests) == 3
    assert events[-1]["payload"]["status"] == "completed"
    assert events[-1]["payload"]["content"] == answer.strip()
    streaming = [e for e in events if e["payload"]["status"] == "streaming"]
    tokens = len(answer) // 2
    assert 1 <= len(streaming) <= tokens // 10, f"{len(streaming)} events for {tokens} tokens: not coalesced"
    assert "harbour.txt" in str(llm.requests[-1]["messages"])  # the retrieved passage went to the model


async def test_a_stream_that_dies_midway_ends_failed_with_a_readable_error(
    database_url: str, s3_env: dict[str, str], tmp_path: Any
) -> None:
    with fake_llm(["die"], "x" * 400) as llm:
        system = start_system(
            database_url,
            s3_env,
            tmp_path,
            LLM_PROVIDER="openai",
            LLM_BASE_URL=llm.url,
            LLM_MODEL="fake",
            JOB_MAX_ATTEMPTS="2",
        )
        try:
            owner, _, api, workspace = setup_workspace(system)
            conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
                "id"
            ]
            async with EventCollector(system.api.ws_url, system.token(owner)) as ws:
                reply_id = api.post(
                    f"/api/conversations/{conversation}/messages", json={"content": "q"}
                ).json()["reply"]["id"]
                await ws.wait_until(lambda: final(ws, reply_id), timeout=60)
                events = message_events(ws, conversation)
        finally:
            system.stop()
    last = events[-1]["payload"]
    assert last["status"] == "failed"
    assert "broke off" in last["error"] and "2 attempts" in last["error"]
    # Each attempt restarted the answer from an empty text.
    assert len(llm.requests) == 2


async def test_killing_the_replica_that_streams_an_answer_lets_the_other_finish_it(
    database_url: str, s3_env: dict[str, str], tmp_path: Any
) -> None:
    answer = "Four hundred barrels [1]. " * 40
    with fake_llm(["stream"], answer, chunk_chars=5, delay=0.02) as llm:
        system = start_system(
            database_url,
            s3_env,
            tmp_path,
            apis=2,
            LLM_PROVIDER="openai",
            LLM_BASE_URL=llm.url,
            LLM_MODEL="fake",
            JOB_LEASE_SECONDS="1.5",
        )
        try:
            owner, _, api, workspace = setup_workspace(system)
            conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
                "id"
            ]
            token = system.token(owner)
            async with (
                EventCollector(system.apis[0].ws_url, token) as ws0,
                EventCollector(system.apis[1].ws_url, token) as ws1,
            ):
                reply_id = api.post(
                    f"/api/conversations/{conversation}/messages", json={"content": "q"}
                ).json()["reply"]["id"]
                await ws0.wait_for(lambda f: f.get("payload", {}).get("status") == "streaming", timeout=30)
                holder = _holder_pid(database_url)
                victim = next(s for s in system.apis if s.process.pid == holder)
                survivor, ws = (system.apis[1], ws1) if victim is system.apis[0] else (system.apis[0], ws0)
                victim.process.kill()
                try:
                    await ws.wait_until(lambda: final(ws, reply_id), timeout=60)
                except AssertionError:
                    print(system.logs())
                    raise
                events = message_events(ws, conversation)
            listed = (
                system.client(owner, survivor)
                .get(f"/api/conversations/{conversation}/messages")
                .json()["items"]
            )
        finally:
            system.stop()
    finals = [
        e
        for e in events
        if e["type"] == "message.status_updated" and e["payload"]["status"] in ("completed", "failed")
    ]
    assert [e["payload"]["status"] for e in finals] == ["completed"], [
        (e["id"], e["payload"]["status"], len(e["payload"]["content"])) for e in events
    ]
    assert finals[0]["payload"]["content"] == answer.strip()
    assert len(llm.requests) == 2  # the answer was restarted once, by the survivor
    # The takeover restarted the answer: a streaming event with the text reset to empty.
    assert any(e["payload"]["status"] == "streaming" and e["payload"]["content"] == "" for e in events)
    assert listed[-1]["status"] == "completed" and listed[-1]["content"] == answer.strip()


def _holder_pid(dsn: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT locked_by FROM answer_jobs WHERE status = 'running'").fetchone()
        if row and row[0]:
            return int(row[0].split(":")[2])  # answer:<host>:<pid>:<suffix>
        time.sleep(0.05)
    raise AssertionError("no running answer job")
