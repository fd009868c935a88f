"""6. Scale-out cost: CPU an api replica spends on events for users it does not hold, on each broker."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import httpx

from bench import doorbell, profiling
from bench.common import Bench, Child, Row, Section, cpu_seconds, median, median_of
from bench.realtime import analyse
from bench.stack import apis, make_users, s3
from rag_devstack.redis import RedisServer
from rag_testing.prometheus import metric_value

BROKERS = ("postgres", "redis")
REPLICAS = (2, 4, 8)
RATE = 1000  # events/s, one event (one NOTIFY) per transaction
USERS = 100
PUBLISHERS = 2
CONNECTIONS = 3


async def publish_window(
    bench: Bench, dsn: str, users_file: str, seconds: float
) -> tuple[list[list[int]], float]:
    """Publish for `seconds`; (every event's [user, id, commit ns], seconds actually taken)."""
    pubs = [
        await Child.start(
            "bench.publisher",
            "bus",
            dsn,
            users_file,
            str(RATE / PUBLISHERS),
            str(seconds),
            "1",
            str(CONNECTIONS),
            log=bench.log_dir / "scaleout-publisher.log",
        )
        for _ in range(PUBLISHERS)
    ]
    try:
        for p in pubs:
            await p.expect("ready", timeout=60)
        for p in pubs:
            p.send({"t": "go"})
        done = [await p.expect("done", timeout=seconds + 120) for p in pubs]
    finally:
        for p in pubs:
            await p.stop()
    return [c for d in done for c in d["commits"]], max(float(d["seconds"]) for d in done)


async def relay_index(system: Any) -> int | None:
    """Which replica's relay forwards (the Redis broker), by its /metrics; None: Postgres."""
    async with httpx.AsyncClient(timeout=10) as http:
        for i, api in enumerate(system.apis):
            text = (await http.get(api.url + "/metrics")).text
            if metric_value(text, "rag_api_redis_relay_active") == 1.0:
                return i
    return None


async def wait_for_relay(system: Any, timeout: float = 10) -> int | None:
    """The forwarding relay's replica, once there is one (None at once: the Postgres broker)."""
    if system.api.env.get("EVENTBUS_BROKER") != "redis":
        return None
    deadline = asyncio.get_running_loop().time() + timeout
    while (found := await relay_index(system)) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError("no relay took the lock")
        await asyncio.sleep(0.1)
    return found


async def one_run(
    bench: Bench, system: Any, dsn: str, users_file: str, clients: Child, seconds: float, relay: int | None
) -> dict[str, float]:
    pids = [api.process.pid for api in system.apis]
    # Idle baseline over the same length of time: heartbeats, reconcile, the answer worker's poll.
    idle0 = [cpu_seconds(p) for p in pids]
    await asyncio.sleep(seconds)
    idle1 = [cpu_seconds(p) for p in pids]
    load0 = [cpu_seconds(p) for p in pids]
    commits, took = await publish_window(bench, dsn, users_file, seconds)
    events = len(commits)
    clients.send({"t": "collect", "expect": events, "timeout": 15})
    received = await clients.expect("received", timeout=120)
    load1 = [cpu_seconds(p) for p in pids]
    idle = [(b - a) / seconds for a, b in zip(idle0, idle1, strict=True)]
    load = [(b - a) / took for a, b in zip(load0, load1, strict=True)]
    busy = [load[i] - idle[i] for i in range(len(pids))]
    # Replicas holding no socket, and not relaying: what one more replica costs.
    foreign = [busy[i] for i in range(1, len(pids)) if i != relay]
    rate = events / took
    latency = analyse(commits, received)
    # A replica that receives nothing measures within a tick of its idle baseline, either side:
    # below it is noise, shown as 0.
    foreign = [max(0.0, f) for f in foreign]
    return {
        "events": float(events),
        "rate": rate,
        "delivered": float(len(received["events"])),
        "foreign_core_share": median(foreign) * 100 / (rate / 1000),
        "foreign_us_per_event": median(foreign) / rate * 1e6,
        "holder_us_per_event": busy[0] / rate * 1e6,
        "relay_us_per_event": busy[relay] / rate * 1e6 if relay not in (None, 0) else float("nan"),
        "idle_core_share": median(idle) * 100,
        "p50": latency["p50"],
        "p99": latency["p99"],
        "lost": latency["lost"],
    }


def broker_env(broker: str, redis: RedisServer | None, replicas: int) -> dict[str, str]:
    if broker == "postgres":
        return {"EVENTBUS_BROKER": "postgres"}
    assert redis is not None
    return {"EVENTBUS_BROKER": "redis", "REDIS_URL": redis.url, "EVENTBUS_REDIS_PREFIX": f"bench{replicas}:"}


async def run(bench: Bench) -> Section:
    runs = bench.runs(3)
    seconds = 1.5 if bench.quick else 3.0
    dsn = bench.database("scaleout")
    users = make_users(dsn, USERS)
    users_file = bench.work_dir / "scaleout-users.json"
    users_file.write_text(json.dumps(users))
    keys = [(b, r) for b in BROKERS for r in REPLICAS]
    results: dict[str, list[dict[str, float]]] = {key_of(b, r): [] for b, r in keys}
    profile = ""
    bells: dict[str, list[dict[str, float]]] = {b: [] for b in BROKERS}
    redis = RedisServer(bench.work_dir / "redis")
    redis.start()
    try:
        with s3(bench.log_dir) as s3_env:
            for broker, replicas in keys:
                key = key_of(broker, replicas)
                log_dir = bench.log_dir / f"scaleout-{broker}-{replicas}"
                env = broker_env(broker, redis, replicas)
                # Replica 0 (which holds every socket) starts first, so that its relay is the
                # one forwarding: the others then cost only what one more replica costs.
                with apis(dsn, s3_env, log_dir, count=1, **env) as system:
                    relay = await wait_for_relay(system)
                    for _ in range(replicas - 1):
                        system.add_api(wait=True)
                    clients = await Child.start(
                        "bench.wsclients",
                        "ws",
                        system.api.ws_url,
                        str(users_file),
                        log=bench.log_dir / "scaleout-clients.log",
                    )
                    try:
                        await clients.expect("ready", timeout=120)
                        for _ in range(runs):
                            results[key].append(
                                await one_run(bench, system, dsn, str(users_file), clients, seconds, relay)
                            )
                        if bench.profile and broker == "postgres" and replicas == REPLICAS[0]:
                            # An extra, unmeasured window with py-spy on a replica that holds no socket.
                            sampling = asyncio.create_task(
                                profiling.record(
                                    system.apis[1].process.pid, 2 * seconds, bench.work_dir / "scaleout.prof"
                                )
                            )
                            commits, _ = await publish_window(bench, dsn, str(users_file), 2 * seconds)
                            clients.send({"t": "collect", "expect": len(commits), "timeout": 15})
                            await clients.expect("received", timeout=120)
                            raw = await sampling
                            profile = profiling.summarise(raw) if raw else "(py-spy unavailable)"
                    finally:
                        await clients.stop()
        # The doorbell alone, both brokers interleaved: what a job wake-up would pay on each.
        for _ in range(runs):
            for broker in BROKERS:
                bells[broker].append(await doorbell.measure(dsn, users, broker, redis.url))
    finally:
        redis.stop()
        bench.drop_database(dsn)

    med = functools.partial(median_of, results)
    bell = functools.partial(median_of, bells)

    rows: list[Row] = []
    for broker, replicas in keys:
        key = key_of(broker, replicas)
        share = med(key, "foreign_core_share")
        rows.append(
            Row(
                "scaleout",
                f"{key}: core share per 1,000 foreign events/s",
                share,
                "%",
                target="< 2 %" if broker == "redis" else "",
                ok=share < 2 if broker == "redis" else None,
                runs=[r["foreign_core_share"] for r in results[key]],
            )
        )
        for q in ("p50", "p99"):
            rows.append(
                Row("scaleout", f"{key}: latency {q}", med(key, q), "ms", runs=[r[q] for r in results[key]])
            )
    for broker in BROKERS:
        for q in ("p50", "p99"):
            rows.append(
                Row(
                    "scaleout",
                    f"doorbell {broker}: {q}",
                    bell(broker, q),
                    "ms",
                    runs=[r[q] for r in bells[broker]],
                )
            )
    table = [
        "| broker | replicas | events/s published | delivered | a replica without the users: CPU per event, "
        "core share per 1,000 events/s | the replica holding them: CPU per event | the relay: CPU per event "
        "| commit to socket p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for broker, replicas in keys:
        key = key_of(broker, replicas)
        relay_cost = med(key, "relay_us_per_event")
        relay_text = (
            "(none)"
            if broker == "postgres"
            else ("the holder" if relay_cost != relay_cost else f"{relay_cost:.0f} µs")
        )
        table.append(
            f"| {broker} | {replicas} | {med(key, 'rate'):,.0f} |"
            f" {med(key, 'delivered') / med(key, 'events') * 100:.0f} % |"
            f" {med(key, 'foreign_us_per_event'):.0f} µs, {med(key, 'foreign_core_share'):.1f} % |"
            f" {med(key, 'holder_us_per_event'):.0f} µs | {relay_text} |"
            f" {med(key, 'p50'):.2f} / {med(key, 'p99'):.2f} ms |"
        )
    table += [
        "",
        f"The doorbell alone ({doorbell.EVENTS:,} one-event transactions at {doorbell.RATE:,.0f}/s over the "
        f"same {USERS} users, from each commit to its notice in a receiver of the bench's own process, "
        f"{runs} runs, brokers interleaved):",
        "",
        "| broker | p50 | p99 | received |",
        "|---|---|---|---|",
        *(
            f"| {b} ({'LISTEN' if b == 'postgres' else 'relay, SPUBLISH, SSUBSCRIBE'}) | {bell(b, 'p50'):.2f} ms |"
            f" {bell(b, 'p99'):.2f} ms | {bell(b, 'received'):.0f} % |"
            for b in BROKERS
        ),
    ]
    method = (
        f"R real `rag-api` replicas (R = {', '.join(map(str, REPLICAS))}) on one database, for each broker "
        f"(EVENTBUS_BROKER: `postgres`, every replica LISTENs on `rag_realtime`; `redis`, a local "
        f"redis-server, each replica subscribes to the channels of the users it holds and one replica's "
        f"relay forwards Postgres' notices). {USERS} users, each in a workspace of their own, all connected "
        f"to replica 0 only (one socket each, from a client process). Two publisher processes publish "
        f"{RATE:,} events/s for {seconds:g} s with `rag_eventbus.publish`, one event per transaction (one "
        f"NOTIFY per event, the costliest case). Each replica's CPU is read from /proc/<pid>/stat (utime + "
        f"stime) over the publishing window and, just before, over an idle window of the same length; the "
        f"difference, per event published, is what an event costs a replica that holds none of its users "
        f"(the median over those replicas, the relay's excluded and shown apart), then the median over "
        f"{runs} runs. Latency: from each event's commit in the publisher to its frame read by the client."
    )
    if profile:
        table += [
            "",
            "py-spy on a replica that holds none of the users (Postgres broker), while events are published:",
            "",
            profile,
        ]
    return Section(
        "scaleout",
        "6. Scale-out cost",
        rows,
        method,
        limits=scaleout_limits(
            {k: med(k, "foreign_us_per_event") for k in results},
            {k: med(k, "relay_us_per_event") for k in results},
            {b: bell(b, "p50") for b in BROKERS},
            {k: med(k, "p50") for k in results},
        ),
        extra="\n".join(table),
        details=results,
    )


def key_of(broker: str, replicas: int) -> str:
    return f"{broker} R={replicas}"


def scaleout_limits(
    us: dict[str, float], relay_us: dict[str, float], bell_p50: dict[str, float], p50: dict[str, float]
) -> str:
    pg = median([v for k, v in us.items() if k.startswith("postgres")])
    rd = median([v for k, v in us.items() if k.startswith("redis")])
    relays = [v for k, v in relay_us.items() if k.startswith("redis") and v == v]
    relay = median(relays) if relays else float("nan")
    per_replica = ", ".join(f"{us[key_of('postgres', r)]:.0f} µs with {r}" for r in REPLICAS)
    at_10_percent = 0.10 / (pg / 1e6)
    ratios = ", ".join(
        f"{p50[key_of('redis', r)] / p50[key_of('postgres', r)]:.1f}x with {r}" for r in REPLICAS
    )
    relay_text = (
        f"The relay pays about {relay:.0f} µs per event it forwards (decoding the notice, one SPUBLISH per "
        f"user, pipelined), once in the cluster rather than once per replica. "
        if relay == relay
        else "The relay ran on the replica that holds the users (it starts first, so its relay takes the "
        "lock), so its cost is inside that replica's. "
    )
    return (
        f"Postgres broker: every replica pays about {pg:.0f} µs of CPU for every notification on "
        f"`rag_realtime`, whoever it is for ({per_replica}: the cost per replica does not grow with their "
        f"number, the cluster's total does), {pg / 10:.0f} % of a core per 1,000 notifications/s on each "
        f"replica before it delivers anything of its own; py-spy (above): most of it is psycopg's "
        f"notification path, then decoding. Redis broker: a replica that holds none of the users pays "
        f"{rd:.0f} µs per event ({rd / 10:.2f} % of a core per 1,000 events/s): it is subscribed to no "
        f"channel of theirs, so Redis sends it nothing. {relay_text}"
        f"The doorbell alone takes {bell_p50['postgres']:.2f} ms at p50 on Postgres and "
        f"{bell_p50['redis']:.2f} ms through the relay and Redis: job wake-ups stay on Postgres NOTIFY, "
        f"where a worker must hear of every job of its queue anyway and would gain nothing from "
        f"per-user channels. "
        f"When to switch: when notifications/s x {pg:.0f} µs becomes a visible share of a replica's CPU "
        f"(10 % at about {at_10_percent:,.0f} notifications/s), or when replicas x that is more than the "
        f"fan-out is worth. Until then, publishing several events per transaction (one NOTIFY carries up to "
        f"~7 KB of events inline) divides the Postgres broker's cost by the batch size. Latency: this machine "
        f"has 2 cores for Postgres, Redis, the publishers, the client and up to 8 replicas, so the Postgres "
        f"broker's grows with the replicas that share them. The Redis broker's p50 is {ratios} the "
        f"Postgres one's: its replicas without users do nothing, and the difference is its one extra hop, "
        f'relay to Redis to subscriber (a timestamp per hop, docs/realtime.md "Scaling out": about '
        f"0.6 ms at p50 and 4 ms at p99 on a quiet machine, the first hop to grow when the cores are short)."
    )
