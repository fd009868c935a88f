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


STREAMING_KEYS = {"workspace_id", "message_id", "conversation_id", "status", "delta", "offset"}
# A long answer with astral characters (a fish: one code point, two UTF-16 units) and a
# variation selector, so offsets in code points and in UTF-16 units differ.
SENTENCE = "The quartermaster counted 🐟 salted cod and ⛵️ barrels in the harbour [1]. "


def long_answer(chars: int) -> str:
    return (SENTENCE * (chars // len(SENTENCE) + 1))[:chars]


def streamed(events: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    """The payloads of the message's `streaming` events, in order."""
    return [
        e["payload"]
        for e in events
        if e["type"] == "message.status_updated"
        and e["payload"]["message_id"] == message_id
        and e["payload"]["status"] == "streaming"
    ]


def apply_deltas(text: str, deltas: list[dict[str, Any]]) -> str:
    """What a client holding `text` (e.g. REST's content so far) builds from later deltas
    (docs/contract.md §5): an empty delta at offset 0 restarts the text; a delta that starts
    beyond the text is a gap (a real client reloads over REST); what the text already holds
    is skipped. Offsets count code points, as Python's str does."""
    for delta in deltas:
        if delta["offset"] == 0 and delta["delta"] == "":
            text = ""
            continue
        assert delta["offset"] <= len(text), f"gap: a delta at {delta['offset']}, the text is {len(text)}"
        text += delta["delta"][len(text) - delta["offset"] :]
    return text


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
            # Each streaming event carries only its delta and where it starts; the deltas add
            # up to the completed content, unstripped.
            so_far = ""
            for e in events[2:-1]:
                assert set(e["payload"]) == STREAMING_KEYS
                assert e["payload"]["offset"] == len(so_far)
                so_far += e["payload"]["delta"]
            assert events[-1]["payload"]["content"] == so_far
        assert stranger_ws.events == []

        done = message_events(owner_ws, conversation)[-1]["payload"]
        assert "four hundred barrels" in done["content"]
        assert [c["filename"] for c in done["citations"]] == ["harbour.txt"]
        assert done["citations"][0]["document_id"] == docs["harbour.txt"]
        # The citation says where the passage is: no page in a text file, and its range in
        # the parsed text (a text file's own text) holds the quoted sentence.
        cited = done["citations"][0]
        assert cited["page"] is None
        assert "four hundred barrels" in HARBOUR.decode()[cited["char_start"] : cited["char_end"]]

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
    assert events[-1]["payload"]["content"] == answer  # exactly what the model said, not stripped
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
        (e["id"], e["payload"]["status"], e["payload"].get("offset")) for e in events
    ]
    assert finals[0]["payload"]["content"] == answer
    assert len(llm.requests) == 2  # the answer was restarted once, by the survivor
    # The takeover restarted the answer: a streaming event at offset 0 with an empty delta,
    # after which the deltas rebuild the whole answer.
    deltas = streamed(events, reply_id)
    assert any(d["offset"] == 0 and d["delta"] == "" for d in deltas)
    assert apply_deltas("", deltas) == answer
    assert listed[-1]["status"] == "completed" and listed[-1]["content"] == answer


def _holder_pid(dsn: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT locked_by FROM answer_jobs WHERE status = 'running'").fetchone()
        if row and row[0]:
            return int(row[0].split(":")[2])  # answer:<host>:<pid>:<suffix>
        time.sleep(0.05)
    raise AssertionError("no running answer job")


async def test_a_long_answer_streams_in_linear_bytes_and_a_client_joining_midway_ends_with_the_same_text(
    database_url: str, s3_env: dict[str, str], tmp_path: Any
) -> None:
    with fake_llm(["stream"], "", chunk_chars=50) as llm:
        system = start_system(
            database_url, s3_env, tmp_path, LLM_PROVIDER="openai", LLM_BASE_URL=llm.url, LLM_MODEL="fake"
        )
        try:
            owner, member, api, workspace = setup_workspace(system)
            conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
                "id"
            ]

            async def ask(answer: str) -> tuple[str, list[dict[str, Any]]]:
                llm.text = answer
                async with EventCollector(system.api.ws_url, system.token(owner)) as ws:
                    reply = api.post(f"/api/conversations/{conversation}/messages", json={"content": "cod?"})
                    reply_id: str = reply.json()["reply"]["id"]
                    await ws.wait_until(lambda: final(ws, reply_id))
                    return reply_id, list(ws.events)

            # 1. Stored event bytes grow linearly with the answer: 4 times the text, about 4
            # times the bytes (the text so far in every event made it 16).
            stored: dict[int, int] = {}
            for chars in (5_000, 20_000):
                answer = long_answer(chars)
                reply_id, events = await ask(answer)
                deltas = streamed(events, reply_id)
                assert all("content" not in d for d in deltas)
                # Offsets count code points: past the first fish they differ from UTF-16 units.
                so_far = ""
                for d in deltas:
                    assert d["offset"] == len(so_far)
                    so_far += d["delta"]
                assert any(d["offset"] != len(answer[: d["offset"]].encode("utf-16-le")) // 2 for d in deltas)
                completed = events[-1]["payload"]
                assert completed["status"] == "completed" and completed["content"] == so_far == answer
                listed = api.get(f"/api/conversations/{conversation}/messages").json()["items"]
                assert listed[-1]["id"] == reply_id and listed[-1]["content"] == answer
                [(stored[chars], count)] = system.sql(
                    STORED_EVENT_BYTES, {"message": reply_id, "user": owner}
                )
                print(f"{chars} characters: {count} events, {stored[chars]} stored bytes")
                assert stored[chars] < 2 * chars + 500 * count  # each byte of text is stored twice at most
            assert 3.5 <= stored[20_000] / stored[5_000] <= 4.5, stored

            # 2. A member who joins while the answer streams: REST gives the text so far, the
            # deltas from then on (older ones skipped by offset) finish it.
            llm.delay = 0.01
            llm.text = answer = long_answer(20_000)
            async with EventCollector(system.api.ws_url, system.token(owner)) as owner_ws:
                reply_id = api.post(
                    f"/api/conversations/{conversation}/messages", json={"content": "cod?"}
                ).json()["reply"]["id"]
                await owner_ws.wait_until(lambda: len(streamed(owner_ws.events, reply_id)) >= 5)
                async with EventCollector(system.api.ws_url, system.token(member)) as member_ws:
                    items = system.client(member).get(f"/api/conversations/{conversation}/messages").json()
                    joined = next(m for m in items["items"] if m["id"] == reply_id)
                    assert joined["status"] == "streaming" and 0 < len(joined["content"]) < len(answer)
                    assert answer.startswith(joined["content"])
                    await member_ws.wait_until(lambda: final(member_ws, reply_id))
                    rebuilt = apply_deltas(joined["content"], streamed(member_ws.events, reply_id))
            assert rebuilt == answer
        finally:
            system.stop()


# What one user's stream stores for a message's status events.
STORED_EVENT_BYTES = """
SELECT sum(octet_length(payload::text))::int, count(*)::int FROM events
WHERE type = 'message.status_updated' AND payload->>'message_id' = %(message)s AND user_id = %(user)s
"""


# Follow-up questions (docs/conversations.md "Follow-up questions"): a question is searched for
# and answered with the conversation's recent turns.

NORWAY = (
    b"Norway is a country in northern Europe with long fjords and high mountains.\n\n"
    b"Its capital is Oslo, a city at the head of the Oslofjord, home to the royal palace.\n\n"
    b"Norway's economy relies on oil, fishing and shipping.\n"
)
# Other capitals, so that "What is its capital?" alone names no country in particular.
CAPITALS = {
    f"{country.lower()}.txt": f"{country} is a country. The capital of {country} is {city}.\n".encode()
    for country, city in [
        ("France", "Paris"),
        ("Peru", "Lima"),
        ("Kenya", "Nairobi"),
        ("Chile", "Santiago"),
        ("Egypt", "Cairo"),
        ("Japan", "Tokyo"),
    ]
}


def ask_and_wait(
    system: System, api: httpx.Client, conversation: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Post a question and wait for its reply to end; the reply as REST lists it."""
    posted = api.post(f"/api/conversations/{conversation}/messages", json=body)
    assert posted.status_code == 201, posted.text
    reply_id = posted.json()["reply"]["id"]
    deadline = time.monotonic() + 60
    while True:
        items = api.get(f"/api/conversations/{conversation}/messages").json()["items"]
        reply: dict[str, Any] = next(m for m in items if m["id"] == reply_id)
        if reply["status"] in ("completed", "failed"):
            return reply
        assert time.monotonic() < deadline, system.logs()
        time.sleep(0.05)


def cited_text(reply: dict[str, Any], sources: dict[str, bytes]) -> list[tuple[str, str]]:
    """(filename, the cited range of its text) of each citation: what a viewer jumps to."""
    return [
        (c["filename"], sources[c["filename"]].decode()[c["char_start"] : c["char_end"]])
        for c in reply["citations"]
    ]


async def test_a_follow_up_question_is_answered_from_the_conversations_topic(system: System) -> None:
    _, _, api, workspace = setup_workspace(system)
    sources = {"norway.txt": NORWAY, **CAPITALS}
    docs = ingest(system, api, workspace, sources)
    conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "geo"}).json()["id"]

    first = ask_and_wait(system, api, conversation, {"content": "Tell me about Norway"})
    assert first["status"] == "completed" and "fjords" in first["content"], first
    follow_up = ask_and_wait(system, api, conversation, {"content": "What is its capital?"})
    assert follow_up["status"] == "completed", follow_up
    assert "Oslo" in follow_up["content"], follow_up["content"]
    cited = cited_text(follow_up, sources)
    assert [name for name, _ in cited] == ["norway.txt"], follow_up
    assert "Oslo" in cited[0][1]  # the passage naming Oslo
    assert follow_up["citations"][0]["document_id"] == docs["norway.txt"]

    # The same question with no history names no country in particular.
    fresh = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()["id"]
    alone = ask_and_wait(system, api, fresh, {"content": "What is its capital?"})
    assert {c["filename"] for c in alone["citations"]} - {"norway.txt"}, alone

    # A question's filters narrow its retrieval: only Japan's document may be quoted.
    only_japan = {"document_id": [docs["japan.txt"]], "content_type": ["text/plain"]}
    filtered = ask_and_wait(system, api, fresh, {"content": "What is the capital?", "filters": only_japan})
    assert [name for name, _ in cited_text(filtered, sources)] == ["japan.txt"], filtered
    assert "Tokyo" in filtered["content"]


async def test_openai_follow_up_is_condensed_by_the_model_and_its_history_is_bounded(
    database_url: str, s3_env: dict[str, str], tmp_path: Any
) -> None:
    def respond(body: dict[str, object]) -> str:
        if "standalone search query" in str(body["messages"]):
            return "capital city of Norway"
        return "Oslo is the capital of Norway [1]."

    with fake_llm(["stream"], "") as llm:
        llm.respond = respond
        system = start_system(
            database_url, s3_env, tmp_path, LLM_PROVIDER="openai", LLM_BASE_URL=llm.url, LLM_MODEL="fake"
        )
        try:
            _, _, api, workspace = setup_workspace(system)
            sources = {"norway.txt": NORWAY, **CAPITALS}
            ingest(system, api, workspace, sources)
            conversation = api.post(f"/api/workspaces/{workspace}/conversations", json={"title": "t"}).json()[
                "id"
            ]
            ask_and_wait(system, api, conversation, {"content": "Tell me about Norway"})
            assert len(llm.requests) == 1  # no history yet: no condensing call
            follow_up = ask_and_wait(system, api, conversation, {"content": "What is its capital?"})
            condense, answer = llm.requests[1:]

            # A very long conversation: 3,000 more turns of 2,000 characters each.
            system.sql(LONG_HISTORY, {"conversation": conversation, "turns": 3000})
            started = time.monotonic()
            ask_and_wait(system, api, conversation, {"content": "How many people live there?"})
            long_answer_seconds = time.monotonic() - started
            long_condense, long_answer = llm.requests[3:]
        finally:
            system.stop()

    assert "Tell me about Norway" in str(condense["messages"]) and "What is its capital?" in str(
        condense["messages"]
    )
    # The condensed query found Norway's passage first, and the model's [1] cites it.
    prompt = answer["messages"]
    assert isinstance(prompt, list)
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert prompt[1]["content"] == "Tell me about Norway"
    assert prompt[-1]["content"].startswith("Passages:\n\n[1] (norway.txt)")
    assert [name for name, _ in cited_text(follow_up, sources)] == ["norway.txt"]
    assert "Oslo" in cited_text(follow_up, sources)[0][1]
    # Bounded however long the conversation: at most 6 turns and 4,000 characters of history
    # (here the newest two turns of 2,000 characters fill it).
    history = long_answer["messages"][1:-1]  # type: ignore[index]
    assert sorted(m["role"] for m in history) == ["assistant", "user"]
    assert sum(len(m["content"]) for m in history) == 4000
    assert len(str(long_condense["messages"])) < 6000
    print(f"answer after 3,000 turns of history: {long_answer_seconds:.2f} s")
    assert long_answer_seconds < 30


LONG_HISTORY = """
INSERT INTO messages (conversation_id, workspace_id, role, status, content)
SELECT c.id, c.workspace_id, CASE WHEN n %% 2 = 0 THEN 'user' ELSE 'assistant' END, 'completed', repeat('w', 2000)
FROM conversations c, generate_series(1, %(turns)s) n
WHERE c.id = %(conversation)s
"""
