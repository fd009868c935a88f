"""3. Realtime bridge: a publisher process → Postgres → one rag-api process → N WebSockets."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import profiling
from bench.common import Bench, Child, Row, Section, cpu_seconds, median, percentile
from bench.stack import apis, make_users, s3

FANOUT = (1, 100, 1000)
RATE = 5000  # events/s offered: the target
PER_TX = 10  # events per publishing transaction (one NOTIFY each)
PUBLISH_CONNECTIONS = 4  # per publisher process
PUBLISHERS = 2  # processes: one Python process cannot offer 5,000 events/s on this machine


def analyse(commits: list[list[int]], received: dict[str, Any]) -> dict[str, float]:
    """Join the publisher's commit times with the clients' receive times by (user, id)."""
    sent = {(u, i): ns for u, i, ns in commits}
    got = {(u, i): ns for u, i, ns in received["events"]}
    latencies = [(got[k] - ns) / 1e6 for k, ns in sent.items() if k in got]
    lost = sum(1 for k in sent if k not in got)
    first = min(sent.values())
    last = max(got.values()) if got else first
    span = (last - first) / 1e9
    return {
        "events": float(len(sent)),
        "delivered_per_s": len(latencies) / span if span > 0 else float("nan"),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "lost": float(lost),
        "dups": float(received["dups"]),
        "gaps": float(received["gaps"]),
        "closes": float(received["closes"]),
    }


async def one_run(
    bench: Bench, mode: str, dsn: str, users_file: Path, clients: Child, seconds: float, api_pid: int | None
) -> dict[str, float]:
    count = 1 if mode == "raw" else PUBLISHERS  # raw numbers its events per process: keep one
    publishers = [
        await Child.start(
            "bench.publisher",
            mode,
            dsn,
            str(users_file),
            str(RATE / count),
            str(seconds),
            str(PER_TX),
            str(PUBLISH_CONNECTIONS),
            log=bench.log_dir / "publisher.log",
        )
        for _ in range(count)
    ]
    try:
        for publisher in publishers:
            await publisher.expect("ready", timeout=60)
        cpu0 = cpu_seconds(api_pid) if api_pid else 0.0
        for publisher in publishers:
            publisher.send({"t": "go"})
        done = [await publisher.expect("done", timeout=seconds + 120) for publisher in publishers]
        commits = [c for d in done for c in d["commits"]]
        clients.send({"t": "collect", "expect": len(commits), "timeout": 15})
        received = await clients.expect("received", timeout=120)
        cpu1 = cpu_seconds(api_pid) if api_pid else 0.0
    finally:
        for publisher in publishers:
            await publisher.stop()
    result = analyse(commits, received)
    result["offered_per_s"] = len(commits) / max(float(d["seconds"]) for d in done)
    result["api_cpu_s"] = cpu1 - cpu0
    return result


async def run(bench: Bench) -> Section:
    runs = bench.runs(3)
    seconds = 1.5 if bench.quick else 4.0
    fanout = (1, 100) if bench.quick else FANOUT
    dsn = bench.database("realtime")
    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    profile = ""
    try:
        with s3(bench.log_dir) as s3_env, apis(dsn, s3_env, bench.log_dir / "realtime") as system:
            api = system.api
            for n in fanout:
                users = make_users(dsn, n)
                users_file = bench.work_dir / f"users-{n}.json"
                users_file.write_text(json.dumps(users))
                clients = await Child.start(
                    "bench.wsclients",
                    "ws",
                    api.ws_url,
                    str(users_file),
                    log=bench.log_dir / f"clients-{n}.log",
                )
                raw = None
                if n == 100:
                    raw = await Child.start(
                        "bench.wsclients", "raw", dsn, str(users_file), log=bench.log_dir / "raw-listener.log"
                    )
                    await raw.expect("ready", timeout=60)
                try:
                    ready = await clients.expect("ready", timeout=300)
                    if ready["failed"]:
                        raise RuntimeError(
                            f"{ready['failed']} of {n} clients failed to connect: {ready['error']}"
                        )
                    for _ in range(runs):
                        results[f"N={n}"].append(
                            await one_run(bench, "bus", dsn, users_file, clients, seconds, api.process.pid)
                        )
                        if raw is not None:
                            results["raw"].append(
                                await one_run(bench, "raw", dsn, users_file, raw, seconds, None)
                            )
                    if bench.profile and n == 100:  # an extra, unmeasured run with py-spy on the api
                        out = bench.work_dir / "realtime.prof"
                        sampling = asyncio.create_task(profiling.record(api.process.pid, seconds, out))
                        await one_run(bench, "bus", dsn, users_file, clients, seconds, None)
                        profile = profiling.summarise(out) if await sampling else "(py-spy unavailable)"
                finally:
                    await clients.stop()
                    if raw is not None:
                        await raw.stop()
    finally:
        bench.drop_database(dsn)

    def med(key: str, field: str) -> float:
        return median([r[field] for r in results[key]])

    rows: list[Row] = []
    for n in fanout:
        key = f"N={n}"
        rate, p99 = med(key, "delivered_per_s"), med(key, "p99")
        lost = sum(r["lost"] + r["gaps"] for r in results[key])
        dups = sum(r["dups"] for r in results[key])
        target = n == 100
        rows.append(
            Row(
                "realtime",
                f"{key} delivered",
                rate,
                "events/s",
                "≥ 5,000 events/s" if target else "",
                rate >= 0.98 * RATE if target else None,
                [r["delivered_per_s"] for r in results[key]],
            )
        )
        rows.append(
            Row("realtime", f"{key} p50", med(key, "p50"), "ms", runs=[r["p50"] for r in results[key]])
        )
        rows.append(
            Row(
                "realtime",
                f"{key} p99",
                p99,
                "ms",
                "≤ 25 ms" if target else "",
                p99 <= 25.0 if target else None,
                [r["p99"] for r in results[key]],
            )
        )
        rows.append(Row("realtime", f"{key} lost + duplicated", lost + dups, "events", "0", lost + dups == 0))
    rows.append(
        Row(
            "realtime",
            "floor pg_notify→LISTEN p50",
            med("raw", "p50"),
            "ms",
            runs=[r["p50"] for r in results["raw"]],
        )
    )
    rows.append(
        Row(
            "realtime",
            "floor pg_notify→LISTEN p99",
            med("raw", "p99"),
            "ms",
            runs=[r["p99"] for r in results["raw"]],
        )
    )
    table = [
        "| path | offered | delivered | p50 | p99 | max | lost | dup | 4408 closes | api CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in [f"N={n}" for n in fanout] + ["raw"]:
        label = "raw pg_notify → LISTEN (floor)" if key == "raw" else f"bus → 1 api → {key} sockets"
        cpu = "" if key == "raw" else f"{med(key, 'api_cpu_s') / seconds * 100:.0f} % of a core"
        table.append(
            f"| {label} | {med(key, 'offered_per_s'):,.0f}/s | {med(key, 'delivered_per_s'):,.0f}/s |"
            f" {med(key, 'p50'):.1f} ms | {med(key, 'p99'):.1f} ms | {med(key, 'max'):.0f} ms |"
            f" {sum(r['lost'] + r['gaps'] for r in results[key]):.0f} | {sum(r['dups'] for r in results[key]):.0f} |"
            f" {sum(r['closes'] for r in results[key]):.0f} | {cpu} |"
        )
    if profile:
        table += ["", "py-spy on the api process at N=100 during an extra run:", "", profile]
    method = (
        f"One real `rag-api` process (hypercorn), N users each the only member of a workspace of their "
        f"own, one WebSocket per user; all N clients live in one separate process (`bench.wsclients`, "
        f"the `websockets` library, permessage-deflate offered as browsers do) so that the api process "
        f"is measured alone. A third process publishes `document.status_updated` events with "
        f"`rag_eventbus.publish` (the workers' code path: per-user ids, event rows, one NOTIFY per "
        f"transaction carrying the events inline) at {RATE:,} events/s offered, {PER_TX} events per "
        f"transaction (for {PER_TX} consecutive users, round robin) from {PUBLISHERS} processes of "
        f"{PUBLISH_CONNECTIONS} connections each, for {seconds:g} s. Latency is from the publisher "
        f"sending COMMIT (so it includes the commit) to the frame "
        f"arriving at the client (wall clock, one machine); delivered/s is the events received over the "
        f"time from the first commit to the last arrival. Every (user, id) sent is matched with what "
        f"arrived: a missing id is lost, a repeated one duplicated. The floor publishes the same payloads "
        f"with a bare `pg_notify` to one psycopg LISTEN connection in the client process: no tables, no "
        f"api, no WebSocket. {runs} runs of each, the floor interleaved with N=100."
    )
    return Section(
        "realtime",
        "3. Realtime bridge",
        rows,
        method,
        limits="",
        extra="\n".join(table),
        details={k: v for k, v in results.items()},
    )
