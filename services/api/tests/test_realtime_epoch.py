"""Stream epochs on the WebSocket and GET /api/events: a resume from another epoch gets
resync_required (with the stream's epoch) and never an event of the other stream.

In-process hub (realtime_harness) for the reset cases; real `rag-api` processes for a new
lineage (a copy of the database, as a restore into a new database makes).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest

from rag_core.tokens import mint_token
from rag_testing.pytest_plugin import cloned_database
from rag_testing.seed import make_workspace

from .realtime_harness import SECRET, publish_events, served_hub, ws_client, ws_url

pytestmark = pytest.mark.anyio


def reset_stream(dsn: str, user: uuid.UUID) -> None:
    """What resetting a user's stream is: its row goes, and its runs with it; ids restart at 1."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM user_streams WHERE user_id = %s", (user,))


def ids(frames: list[dict[str, Any]]) -> list[int]:
    return [f["id"] for f in frames]


async def test_resume_with_the_epoch_of_a_reset_stream_resyncs_and_never_replays_the_new_ids(
    database_url: str,
) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url) as srv:
        async with ws_client(ws_url(srv.ws_url, user)) as client:
            hello = await client.frame()
            old_epoch = hello["payload"]["epoch"]
            assert hello["payload"]["last_event_id"] == 0
            await publish_events(database_url, workspace, 3)
            assert ids(await client.events(3)) == [1, 2, 3]
        # Same epoch: an ordinary resume.
        async with ws_client(ws_url(srv.ws_url, user, last_event_id=1, epoch=old_epoch)) as client:
            assert (await client.frame())["payload"]["epoch"] == old_epoch
            assert ids(await client.events(2)) == [2, 3]

        reset_stream(database_url, user)
        await publish_events(database_url, workspace, 5)  # ids 1..5 again, other events
        async with ws_client(ws_url(srv.ws_url, user, last_event_id=2, epoch=old_epoch)) as client:
            hello = await client.frame()
            new_epoch = hello["payload"]["epoch"]
            assert new_epoch != old_epoch and hello["payload"]["last_event_id"] == 5
            assert await client.frame() == {
                "type": "resync_required",
                "payload": {"oldest_event_id": 1, "epoch": new_epoch},
            }
            await client.silent(0.3)  # never 3, 4, 5 of the new stream
            await publish_events(database_url, workspace, 1)
            assert ids(await client.events(1)) == [6]
        # Without an epoch: today's behaviour, the ids are trusted.
        async with ws_client(ws_url(srv.ws_url, user, last_event_id=4)) as client:
            await client.frame()
            assert ids(await client.events(2)) == [5, 6]

        async with httpx.AsyncClient(
            base_url=srv.http_url, headers={"Authorization": f"Bearer {mint_token(user, SECRET)}"}
        ) as http:
            body = (await http.get("/api/events", params={"after": 4, "epoch": new_epoch})).json()
            assert ids(body["items"]) == [5, 6] and body["epoch"] == new_epoch
            r = await http.get("/api/events", params={"after": 2, "epoch": old_epoch})
            assert r.status_code == 409
            assert r.json()["error"]["code"] == "resync_required"
            assert (r.json()["oldest_event_id"], r.json()["epoch"]) == (1, new_epoch)
            assert (await http.get("/api/events", params={"after": 4, "epoch": ""})).status_code == 200


async def test_a_garbage_or_huge_epoch_is_another_epoch_and_is_never_echoed(database_url: str) -> None:
    """Hostile epochs: arbitrary text, 4 KB of it, control characters, markup. Each is just
    not the stream's epoch: a resync (409 over REST), nothing replayed, nothing reflected."""
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    await publish_events(database_url, workspace, 2)
    hostile = ["x" * 4096, "\x01\x1b[31m", "<script>alert(1)</script>", "' OR 1=1 --"]
    async with served_hub(database_url) as srv:
        async with httpx.AsyncClient(
            base_url=srv.http_url, headers={"Authorization": f"Bearer {mint_token(user, SECRET)}"}
        ) as http:
            epoch = (await http.get("/api/events")).json()["epoch"]
            for bad in hostile:
                r = await http.get("/api/events", params={"after": 0, "epoch": bad})
                assert r.status_code == 409 and r.json()["error"]["code"] == "resync_required"
                assert (r.json()["oldest_event_id"], r.json()["epoch"]) == (1, epoch)
                assert bad not in r.text
        for bad in hostile:
            async with ws_client(ws_url(srv.ws_url, user, last_event_id=0, epoch=quote(bad))) as client:
                assert (await client.frame())["payload"] == {
                    "user_id": str(user),
                    "epoch": epoch,
                    "last_event_id": 2,
                }
                assert await client.frame() == {
                    "type": "resync_required",
                    "payload": {"oldest_event_id": 1, "epoch": epoch},
                }
                await client.silent(0.2)  # never events 1, 2


async def test_a_stream_reset_under_an_open_connection_resyncs_it_at_the_next_catch_up(
    database_url: str,
) -> None:
    user = uuid.uuid4()
    workspace = make_workspace(database_url, [user])
    async with served_hub(database_url, reconcile_seconds=None) as srv:
        async with ws_client(ws_url(srv.ws_url, user)) as client:
            old_epoch = (await client.frame())["payload"]["epoch"]
            await publish_events(database_url, workspace, 4)
            assert ids(await client.events(4)) == [1, 2, 3, 4]
            reset_stream(database_url, user)
            # Ids 1, 2 of the new stream are at or below what the socket sent: dropped as
            # duplicates. The hub's catch-up (after a listener reconnect, or every
            # reconcile_seconds) compares epochs and finds the new one.
            await publish_events(database_url, workspace, 2)
            await client.silent(0.3)
            await srv.hub.catch_up_all()
            resync = await client.frame()
            assert resync["type"] == "resync_required"
            assert resync["payload"] == {"oldest_event_id": 1, "epoch": resync["payload"]["epoch"]}
            assert resync["payload"]["epoch"] != old_epoch
            await client.silent(0.3)
            await publish_events(database_url, workspace, 1)
            assert ids(await client.events(1)) == [3]


async def test_an_api_on_a_copy_of_the_database_is_a_new_lineage(api_factory: Any, pg_admin_dsn: str) -> None:
    """Real processes: a copy of the database (a restore into a new database) issues ids
    after the client's again, with other events than the original would have."""
    api = api_factory()
    user = api.user()
    workspace = user.create_workspace()["id"]
    dsn = api.database_url
    await publish_events(dsn, uuid.UUID(workspace), 3)
    before = user.client.get("/api/events").json()
    epoch, last = before["epoch"], before["last_event_id"]
    api.stop()  # CREATE DATABASE ... TEMPLATE needs the source without sessions
    source = str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
    with cloned_database(pg_admin_dsn, "rag_test_copy", template=source) as copy_dsn:
        restored = api_factory(DATABASE_URL=copy_dsn)
        await publish_events(copy_dsn, uuid.UUID(workspace), 3)
        url = f"{restored.ws_url}?token={restored.token(user.id)}&last_event_id={last + 1}&epoch={epoch}"
        async with ws_client(url) as client:
            hello = await client.frame()
            assert hello["payload"]["last_event_id"] == last + 3 and hello["payload"]["epoch"] != epoch
            assert await client.frame() == {
                "type": "resync_required",
                "payload": {"oldest_event_id": 1, "epoch": hello["payload"]["epoch"]},
            }
            await client.silent(0.3)  # never 5, 6 of the copy
        r = restored.client(restored.token(user.id)).get(
            "/api/events", params={"after": last, "epoch": epoch}
        )
        assert r.status_code == 409 and r.json()["epoch"] == hello["payload"]["epoch"]
        restored.stop()
