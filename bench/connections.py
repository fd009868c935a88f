"""4. Idle WebSocket connections held by one api process, and its RSS per connection."""

from __future__ import annotations

import asyncio
import functools
import json
import resource
import signal
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Bench, Child, Row, Section, median_of, rss_kib
from bench.stack import apis, make_users, s3
from rag_devstack.postgres import free_port
from rag_devstack.procs import ServiceProcess
from rag_testing.system import system_env

TARGET_CONNECTIONS = 10_000
WARM = 50  # connections opened first, so that one-time allocations are not charged per connection


async def one_run(bench: Bench, system: Any, n: int, compression: str, tag: str) -> dict[str, float]:
    api = system.api
    pid = api.process.pid
    warm_file = bench.work_dir / f"warm-{tag}.json"
    warm_file.write_text(json.dumps(make_users("", WARM, workspaces=False)))
    users_file = bench.work_dir / f"idle-{tag}.json"
    users_file.write_text(json.dumps(make_users("", n, workspaces=False)))
    warm = await Child.start(
        "bench.wsclients",
        "ws",
        api.ws_url,
        str(warm_file),
        compression,
        log=bench.log_dir / "idle-clients.log",
    )
    clients = None
    try:
        await warm.expect("ready", timeout=120)
        await asyncio.sleep(1.0)
        before = rss_kib(pid)
        clients = await Child.start(
            "bench.wsclients",
            "ws",
            api.ws_url,
            str(users_file),
            compression,
            log=bench.log_dir / "idle-clients.log",
        )
        ready = await clients.expect("ready", timeout=600)
        await asyncio.sleep(2.0)  # let the connections settle (idle)
        after = rss_kib(pid)
        held = float(ready["connected"])
        return {
            "connected": held,
            "failed": float(ready["failed"]),
            "connect_s": float(ready["seconds"]),
            "rss_before_mib": before / 1024,
            "rss_after_mib": after / 1024,
            "kib_per_conn": (after - before) / held if held else float("nan"),
            "error": ready.get("error") or "",  # type: ignore[dict-item]
        }
    finally:
        if clients is not None:
            await clients.stop(timeout=60)
        await warm.stop()


def _package(filename: str) -> str:
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    for ours in ("rag_api", "rag_eventbus", "rag_core", "rag_jobqueue", "rag_observability"):
        if ours in parts:
            return ours
    if "asyncio" in parts:
        return "asyncio"
    return Path(filename).stem + " (stdlib)" if "python3" in filename else Path(filename).name


async def _snapshot(proc: ServiceProcess, out: Path, index: int) -> tracemalloc.Snapshot:
    proc.signal(signal.SIGUSR1)
    path = Path(f"{out}.{index}")
    for _ in range(600):
        await asyncio.sleep(0.1)
        if await asyncio.to_thread(path.exists):
            await asyncio.sleep(0.5)  # let the dump finish
            return tracemalloc.Snapshot.load(str(path))
    raise TimeoutError(f"no tracemalloc snapshot at {path}")


async def traced_run(bench: Bench, dsn: str, s3_env: dict[str, str], n: int) -> str:
    """Where an idle socket's memory goes: the api under tracemalloc, snapshots compared by package."""
    out = bench.work_dir / "api.tracemalloc"
    port = free_port()
    env = {**system_env(dsn, s3_env), "API_PORT": str(port), "BENCH_TRACEMALLOC_OUT": str(out)}
    proc = ServiceProcess([PYTHON, "-m", "bench.tracedapi"], env, bench.log_dir / "traced-api.log").start()
    warm = clients = None
    try:
        await asyncio.to_thread(proc.wait_http, f"http://127.0.0.1:{port}/readyz", 120)
        url = f"ws://127.0.0.1:{port}/api/ws"
        warm_file = bench.work_dir / "traced-warm.json"
        warm_file.write_text(json.dumps(make_users("", WARM, workspaces=False)))
        users_file = bench.work_dir / "traced-users.json"
        users_file.write_text(json.dumps(make_users("", n, workspaces=False)))
        warm = await Child.start(
            "bench.wsclients", "ws", url, str(warm_file), log=bench.log_dir / "idle-clients.log"
        )
        await warm.expect("ready", timeout=120)
        await asyncio.sleep(1.0)
        before = await _snapshot(proc, out, 0)
        clients = await Child.start(
            "bench.wsclients", "ws", url, str(users_file), log=bench.log_dir / "idle-clients.log"
        )
        ready = await clients.expect("ready", timeout=600)
        await asyncio.sleep(2.0)
        after = await _snapshot(proc, out, 1)
    finally:
        for child in (clients, warm):
            if child is not None:
                await child.stop(timeout=60)
        proc.stop()
    by_package: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        by_package[_package(stat.traceback[0].filename)] += stat.size_diff
    held = max(1, int(ready["connected"]))
    total = sum(by_package.values()) / held / 1024
    lines = [
        f"Where the Python heap of an idle socket goes (an extra run under tracemalloc, {held:,} sockets, "
        f"permessage-deflate offered; tracemalloc sees allocations through Python's allocators, zlib's "
        f"included, so {total:.1f} KiB per socket here against the RSS growth above):",
        "",
        "| allocated by | per socket |",
        "|---|---|",
    ]
    for name, size in by_package.most_common(8):
        lines.append(f"| {name} | {size / held / 1024:.1f} KiB |")
    return "\n".join(lines)


async def run(bench: Bench) -> Section:
    runs = bench.runs(3)
    n = 1000 if bench.quick else TARGET_CONNECTIONS
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    n = min(n, limit - 500)  # each process (api, clients) needs one descriptor per socket
    # RSS grows linearly with sockets: the second variant is measured on fewer, to save time.
    sizes = {"deflate": n, "none": min(n, 2_000)}
    dsn = bench.database("connections")
    results: dict[str, list[dict[str, float]]] = {"deflate": [], "none": []}
    traced = ""
    try:
        with s3(bench.log_dir) as s3_env:
            for i in range(runs):
                for compression in ("deflate", "none"):
                    # A fresh api each run: RSS does not shrink back after connections close.
                    with apis(dsn, s3_env, bench.log_dir / f"connections-{i}-{compression}") as system:
                        results[compression].append(
                            await one_run(bench, system, sizes[compression], compression, f"{i}{compression}")
                        )
            if bench.profile:
                traced = await traced_run(bench, dsn, s3_env, min(n, 500))
    finally:
        bench.drop_database(dsn)

    med = functools.partial(median_of, results)

    held = med("deflate", "connected")
    per_conn = med("deflate", "kib_per_conn")
    per_conn_plain = med("none", "kib_per_conn")
    rows = [
        Row(
            "connections",
            "idle sockets held by one api",
            held,
            "",
            f"{n:,}",
            held >= n,
            [r["connected"] for r in results["deflate"]],
        ),
        Row(
            "connections",
            "RSS per idle socket (deflate offered)",
            per_conn,
            "KiB",
            "≤ 20 KiB",
            per_conn <= 20,
            [r["kib_per_conn"] for r in results["deflate"]],
        ),
        Row(
            "connections",
            "RSS per idle socket (no compression)",
            per_conn_plain,
            "KiB",
            "≤ 20 KiB",
            per_conn_plain <= 20,
            [r["kib_per_conn"] for r in results["none"]],
        ),
    ]
    table = [
        "| clients offer | held | connect time | api RSS before → after | per connection |",
        "|---|---|---|---|---|",
    ]
    for key, label in (("deflate", "permessage-deflate (browsers)"), ("none", "no compression")):
        table.append(
            f"| {label} | {med(key, 'connected'):,.0f} of {sizes[key]:,} | {med(key, 'connect_s'):.1f} s |"
            f" {med(key, 'rss_before_mib'):.0f} → {med(key, 'rss_after_mib'):.0f} MiB | {med(key, 'kib_per_conn'):.1f} KiB |"
        )
    if traced:
        table += ["", traced]
    method = (
        f"A fresh `rag-api` process per run. {WARM} sockets are opened first (one-time allocations: "
        f"imports, pools, the first handshake), the api's RSS (VmRSS) is read, then {n:,} more sockets of "
        f"as many distinct users are opened from a separate client process ({100} handshakes at a time), "
        f"each waits for its `hello`, and after 2 s idle the RSS is read again: per connection = growth / "
        f"sockets. RLIMIT_NOFILE is raised to its hard limit ({limit:,}) by the bench, which the api and "
        f"the clients inherit. Measured twice per run: with the clients offering permessage-deflate (what "
        f"browsers and the `websockets` library do by default; hypercorn accepts it) and, with "
        f"{sizes['none']:,} sockets, without. {runs} runs."
    )
    return Section(
        "connections",
        "4. Idle connections",
        rows,
        method,
        limits=connections_limits(held, n, limit, per_conn, per_conn_plain),
        extra="\n".join(table),
        details=dict(results),
    )


def connections_limits(held: float, n: int, limit: int, deflate: float, plain: float) -> str:
    text = (
        f"One api process held {held:,.0f} idle sockets"
        + (f" of the {n:,} asked for" if held < n else "")
        + f"; the bound here is the descriptor limit ({limit:,} per process: each socket needs one in the "
        f"api and one in the client process), not memory (24 GiB) nor CPU once they are open. The memory "
        f"target is missed: {deflate:.0f} KiB per socket when the client offers permessage-deflate "
        f"({deflate / 20:.1f}x the 20 KiB target), {plain:.0f} KiB without ({plain / 20:.1f}x). "
        "tracemalloc (above) shows where: with compression, wsproto's per-connection zlib compressor "
        "(permessage-deflate with context takeover and a 15-bit window: deflateInit reserves about 256 KiB, "
        "of which the first frame, `hello`, touches about 100 KiB) is most of it. Without it the rest is "
        "spread over asyncio (the tasks, futures and transport of each socket: hypercorn's own tasks plus "
        "our four, writer, reader, close-waiter and heartbeat), hypercorn, Starlette and our Connection. "
        "Fixes: do not negotiate permessage-deflate, or negotiate it with server_no_context_takeover and "
        "a small window so that no compressor outlives a message (hypercorn hard-codes "
        "`PerMessageDeflate()` in its handshake, so this needs a patched handshake or another server): "
        "about 40 KiB per socket; folding the close-waiter and heartbeat into the writer saves a few KiB "
        "more; 20 KiB needs a leaner WebSocket server than hypercorn + wsproto, whose per-connection "
        "state is most of what remains."
    )
    return text
