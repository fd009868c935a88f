"""Realtime over the WebSocket against a real api: live events, resume after the network
dropped, resync on a foreign epoch, live token refresh, a token that stays bad, and the
per-user connection cap."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import pytest

from rag_engine_client import RagClient, Realtime, RealtimeUnauthorized
from rag_testing.faults import TcpProxy
from rag_testing.system import System

pytestmark = pytest.mark.anyio

UPLOADED = ["document.created", "job.status_updated"]  # with no worker running


async def upload(rest: RagClient, workspace: str) -> None:
    name = f"{uuid.uuid4()}.txt"
    await rest.upload(workspace, [(name, uuid.uuid4().hex.encode(), "text/plain")])


async def test_live_events_arrive_in_order_after_ready(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    async with RagClient(api.api.url, api.token(user)) as rest, rest.realtime(**recorder.hooks()) as realtime:
        await recorder.live(realtime)
        assert realtime.transport == "websocket"
        assert [r["last_event_id"] for r in recorder.ready] == [0]  # a fresh client loads its state now
        workspace = await rest.create_workspace("w")
        await upload(rest, workspace["id"])
        await recorder.until(lambda: len(recorder.events) == 3, what="3 events")
        assert recorder.types == ["workspace.member_added", *UPLOADED]
        assert recorder.ids == [1, 2, 3]
        assert recorder.events[1]["payload"]["workspace_id"] == workspace["id"]
        assert realtime.last_event_id == 3 and realtime.epoch is not None
    assert realtime.state == "stopped"


async def test_resume_after_the_network_dropped_loses_and_repeats_nothing(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    proxy = TcpProxy("127.0.0.1", api.api.port).start()
    try:
        async with (
            RagClient(api.api.url, api.token(user)) as rest,
            Realtime(proxy.url, api.token(user), transport="websocket", **recorder.hooks()) as realtime,
        ):
            await recorder.live(realtime)
            workspace = await rest.create_workspace("w")
            await upload(rest, workspace["id"])
            await recorder.until(lambda: len(recorder.events) == 3, what="before the cut")

            proxy.cut()
            await recorder.until(lambda: realtime.state != "live", what="the drop noticed")
            for _ in range(3):  # published while the client cannot hear
                await upload(rest, workspace["id"])
            await asyncio.sleep(1)
            proxy.restore()

            await recorder.until(lambda: len(recorder.events) >= 9, timeout=90, what="resumed")
            await asyncio.sleep(1)  # anything repeated would arrive now
            assert recorder.ids == list(range(1, 10))
            assert recorder.types == ["workspace.member_added", *UPLOADED * 4]
            assert realtime.connections >= 2
            assert len(recorder.ready) == 1 and recorder.resyncs == []  # resumed: no reload
            assert any(state == "reconnecting" for state, _ in recorder.states)
    finally:
        proxy.stop()


async def test_a_resume_from_a_foreign_epoch_resyncs_instead_of_replaying(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    async with RagClient(api.api.url, api.token(user)) as rest:
        workspace = await rest.create_workspace("w")
        await upload(rest, workspace["id"])
        current = (await rest.events())["epoch"]
        foreign = "f" * 20 if current != "f" * 20 else "0" * 20
        realtime = rest.realtime(last_event_id=1, epoch=foreign, **recorder.hooks())
        async with realtime:
            await recorder.until(lambda: bool(recorder.resyncs), what="resync_required")
            assert recorder.resyncs[0]["epoch"] == current
            assert realtime.epoch == current and realtime.last_event_id is None
            assert recorder.ready == [] and recorder.events == []  # nothing of the "other" stream
            await upload(rest, workspace["id"])
            await recorder.until(lambda: len(recorder.events) == 2, what="live after the resync")
            assert recorder.ids == [4, 5]  # the first event after a resync is the new baseline
            assert realtime.last_event_id == 5


async def test_a_ten_second_token_is_refreshed_in_place(api: System, recorder: Any) -> None:
    user = uuid.uuid4()
    handed: list[str] = []

    async def provider() -> str:
        # First a token that expires in 10 s; from then on fresh ones, as an app's refresh would.
        token = api.token(user, ttl_seconds=10 if not handed else 3600)
        handed.append(token)
        return token

    async with RagClient(api.api.url, provider) as rest, rest.realtime(**recorder.hooks()) as realtime:
        await recorder.live(realtime)
        workspace = await rest.create_workspace("w")
        await asyncio.sleep(14)  # past the first token's exp
        await upload(rest, workspace["id"])
        await recorder.until(lambda: len(recorder.events) == 3, what="events after the old exp")
        assert recorder.ids == [1, 2, 3]
        # token_expiring came at once (less than 60 s left); the provider's new token went in an
        # auth frame, so the socket outlived the old token: one connection, never reconnected.
        assert realtime.connections == 1
        assert recorder.states == [
            ("connecting", "websocket"),
            ("live", "websocket"),
            ("live", "token refreshed"),
        ]
        assert len(handed) >= 3  # connect, the REST call, token_expiring


async def test_a_provider_that_only_has_a_bad_token_stops_the_stream(api: System, recorder: Any) -> None:
    asked = itertools.count()

    def provider() -> str:
        next(asked)
        return "not-a-jwt"

    realtime = Realtime(api.api.url, provider, **recorder.hooks())
    async with realtime:
        with pytest.raises(RealtimeUnauthorized):
            await asyncio.wait_for(realtime.wait(), 60)
    assert realtime.state == "stopped"
    assert next(asked) == 2  # once to connect, once after the 4401: then it gave up
    with pytest.raises(RealtimeUnauthorized):
        async for _ in realtime:
            pass


async def test_an_expiring_token_the_provider_cannot_renew_ends_with_unauthorized(
    api: System, recorder: Any
) -> None:
    user = uuid.uuid4()
    token = api.token(user, ttl_seconds=5)
    realtime = Realtime(api.api.url, token, **recorder.hooks())
    async with RagClient(api.api.url, api.token(user)) as rest, realtime:
        await recorder.live(realtime)
        await rest.create_workspace("w")
        await recorder.until(lambda: len(recorder.events) == 1, what="an event while the token lasts")
        with pytest.raises(RealtimeUnauthorized):
            await asyncio.wait_for(realtime.wait(), 60)
    assert realtime.connections == 1  # the 4401 at exp was not answered by a reconnect loop


async def test_a_token_of_another_user_from_the_provider_is_refused_and_stops(
    api: System, recorder: Any
) -> None:
    user, intruder = uuid.uuid4(), uuid.uuid4()
    first = api.token(user, ttl_seconds=40)  # under 60 s: token_expiring comes at once
    other = api.token(intruder)
    realtime = Realtime(
        api.api.url, lambda: first if realtime.connections == 0 else other, **recorder.hooks()
    )
    started = time.monotonic()
    async with realtime:
        with pytest.raises(RealtimeUnauthorized):
            await asyncio.wait_for(realtime.wait(), 60)
    # The auth frame with the other user's token was closed with 4401 at once, long before
    # the first token's exp; and the client did not come back as the other user.
    assert time.monotonic() - started < 30
    assert realtime.connections == 1


async def test_the_connection_cap_backs_off_long_and_spares_the_other_socket(
    system_factory: Any, recorder: Any
) -> None:
    system: System = system_factory(workers=False, WS_MAX_CONNECTIONS_PER_USER="1")
    user = uuid.uuid4()
    refused_states: list[tuple[str, str]] = []
    first = Realtime(system.api.url, system.token(user), **recorder.hooks())
    second = Realtime(
        system.api.url,
        system.token(user),
        too_many_connections_delay=600,
        on_state=lambda state, detail: refused_states.append((state, detail)),
    )
    async with first:
        await recorder.live(first)
        async with second:
            await recorder.until(lambda: any(s == "reconnecting" for s, _ in refused_states), what="4429")
            detail = next(d for s, d in refused_states if s == "reconnecting")
            assert detail.startswith("4429")
            delay = float(detail.split(" in ")[1].removesuffix(" s"))
            assert 300 <= delay <= 600  # equal jitter over the long delay, not the short backoff
            await asyncio.sleep(2)
            assert second.connections == 0 and second.state == "reconnecting"
        assert first.state == "live" and first.connections == 1
