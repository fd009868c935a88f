"""8. Reconnect storm: every socket of a restarted api replica resumes at once with a gap.

The issue's claim is that reconnect storms are cheap. A storm here is what follows an api
replica restart: every socket was live and had received its user's events up to some id,
the api is stopped with SIGTERM (it closes every socket with 1001), events are published
for those users while it is down, a new api process starts on the same port, and every
socket resumes with `last_event_id` + `epoch` at once. The same storm with nothing
published while the api was down (a gap of 0) is the baseline, measured in the same run,
so that the cost of the gap reads as a ratio. The same gap storm against the api as it was
before the storm fixes of 2ca27b9 (hypercorn's backlog of 100, the hello's position read
given up after the pool's 5 s) is the comparison that says what the fixes changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench import profiling
from bench.common import (
    PYTHON,
    Bench,
    Child,
    Row,
    Section,
    cpu_seconds,
    median,
    median_of,
    now_ns,
    percentile,
)
from bench.stack import make_users, s3
from rag_api.app import POOL_CHECKOUT_TIMEOUT, POOL_MAX_SIZE
from rag_api.realtime.connection import HELLO_CHECKOUT_SECONDS, RETRY_DELAY
from rag_api.settings import ApiSettings
from rag_core.events import DocumentStatusUpdated, Event
from rag_devstack.postgres import free_port
from rag_devstack.procs import ServiceProcess, venv_command
from rag_eventbus import publish_and_number
from rag_eventbus.queries import SELECT_AFTER, SELECT_STREAM
from rag_testing.system import system_env

SOCKETS_PER_USER = 5  # below WS_MAX_CONNECTIONS_PER_USER (20 by default)
GAP = 10  # events published for most users while the api is down
LARGE_GAP = 100  # ... and for one user in LARGE_EVERY
LARGE_EVERY = 10
WARM = 3  # events every socket receives live before the first storm
APP_NAME = "rag-api-storm"  # application_name of the api's connections, to count them
SAMPLE_SECONDS = 0.05  # pg_stat_activity sampling period
PUBLISH_BATCH = 500  # events per publishing transaction
STORM_TIMEOUT = 300.0
PACED = 50  # handshakes in flight per client process in the paced variant
# The api before 2ca27b9: hypercorn's own backlog, and the hello's position read given up
# (1011) after the pool's checkout timeout, as every other checkout still is.
BEFORE_BACKLOG = 100
BEFORE_HELLO_CHECKOUT = POOL_CHECKOUT_TIMEOUT
# One storm of each per run, interleaved: (gap published?, handshakes at a time per client
# process (0: all at once), the api as it was before the fixes?). `before` runs the api
# through `python -m bench.storm serve` (below), rag-api with only those two settings put
# back, so that what the fixes changed is measured in the same run, on the same machine.
KINDS: dict[str, tuple[bool, int, bool]] = {
    "gap": (True, 0, False),
    "none": (False, 0, False),
    "paced": (True, PACED, False),
    "before": (True, 0, True),
}

# The read-only variant of eventbus_stream() for a stream row that exists (a production
# variant would fall back to the INSERT when the row is missing), as a plain statement and
# as the same plpgsql function without its INSERT (a temporary function of the measuring
# session), so that the INSERT's own cost is told apart from plpgsql's.
READ_ONLY_STREAM = """
SELECT s.last_id, s.pruned_through + 1, eventbus_epoch(eventbus_lineage(), s.generation)
FROM user_streams s WHERE s.user_id = %s
"""
CREATE_READ_ONLY_FUNCTION = """
CREATE FUNCTION pg_temp.stream_read_only(p_user uuid)
RETURNS TABLE (last_id bigint, oldest_id bigint, epoch text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT s.last_id, s.pruned_through + 1, eventbus_epoch(eventbus_lineage(), s.generation)
        FROM public.user_streams s WHERE s.user_id = p_user;
END;
$$
"""
READ_ONLY_FUNCTION = "SELECT last_id, oldest_id, epoch FROM pg_temp.stream_read_only(%s)"
# The api's warnings for a pool checkout it gave up and will retry (rag_api/realtime/connection.py).
GAVE_UP_EVENTS = ("realtime_fill_failed", "realtime_position_failed")
SELECT_MEMBERSHIPS = "SELECT workspace_id FROM workspace_members WHERE user_id = %s"


# -- the api process, restarted on one port -------------------------------------------------


class Api:
    """One `rag-api` process at a time on a fixed port; restarted between storms."""

    def __init__(self, bench: Bench, dsn: str, s3_env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = system_env(dsn, s3_env, API_PORT=str(self.port))
        self.log_dir = bench.log_dir / "storm"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc: ServiceProcess | None = None
        self.starts = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, before: bool = False) -> int:
        """Start and wait for /readyz 200; the wall clock (ns) at which it first answered.

        `before`: the api as it was before the storm fixes (`serve` below)."""
        self.starts += 1
        log = self.log_dir / f"api-{self.starts}.log"
        argv = [venv_command("rag-api")]
        env = self.env
        if before:
            argv = [PYTHON, "-m", "bench.storm", "serve"]
            env = {**env, "API_LISTEN_BACKLOG": str(BEFORE_BACKLOG)}
        self.proc = ServiceProcess(argv, env, log).start()
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if not self.proc.alive():
                    raise RuntimeError(f"rag-api exited early:\n{self.proc.log_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return now_ns()
                await asyncio.sleep(0.02)
        raise TimeoutError(f"rag-api not ready in 120 s:\n{self.proc.log_text()[-3000:]}")

    async def stop(self) -> float:
        """SIGTERM (the api closes every socket with 1001) and wait; seconds it took to exit."""
        if self.proc is None or not self.proc.alive():
            return 0.0
        started = time.monotonic()
        self.proc.signal(signal.SIGTERM)
        assert self.proc.proc is not None
        await asyncio.to_thread(self.proc.proc.wait, 60)
        return time.monotonic() - started

    def log_events(self, *names: str) -> Counter[str]:
        """How many times the current process logged each of these events (its JSON log)."""
        counts: Counter[str] = Counter()
        assert self.proc is not None
        for line in self.proc.log_text().splitlines():
            for name in names:
                if f'"event": "{name}"' in line:
                    counts[name] += 1
        return counts

    def listen_backlog(self) -> int:
        """The accept backlog of the api's listening socket, as the kernel holds it (ss's
        Send-Q of a listener): proof of which api a storm ran against."""
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{self.port}"], capture_output=True, text=True, check=False
        ).stdout.split()
        return int(out[2]) if len(out) > 2 else -1

    def status_kib(self, field_name: str) -> int:
        """VmRSS (resident now) or VmHWM (its peak) of the current process."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise KeyError(field_name)


# -- Postgres side: sampling and publishing -------------------------------------------------


class ActivitySampler:
    """Counts the api's backends in pg_stat_activity every SAMPLE_SECONDS while running."""

    def __init__(self, admin_dsn: str, dbname: str) -> None:
        self.admin_dsn = admin_dsn
        self.dbname = dbname
        self.samples: list[tuple[int, int, int]] = []  # (connections, active, LISTENing)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.admin_dsn, autocommit=True) as conn:
            while True:
                cur = await conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'active'),"
                    " count(*) FILTER (WHERE query ILIKE 'LISTEN%%') FROM pg_stat_activity"
                    " WHERE datname = %s AND application_name = %s",
                    (self.dbname, APP_NAME),
                )
                row = await cur.fetchone()
                assert row is not None
                self.samples.append((int(row[0]), int(row[1]), int(row[2])))
                await asyncio.sleep(SAMPLE_SECONDS)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> tuple[int, int, int, int]:
        """(peak connections, peak active, most LISTENing, samples taken)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        peak = max((c for c, _, _ in self.samples), default=0)
        active = max((a for _, a, _ in self.samples), default=0)
        listening = max((n for _, _, n in self.samples), default=0)
        return peak, active, listening, len(self.samples)


def gap_of(user: int) -> int:
    return LARGE_GAP if user % LARGE_EVERY == 0 else GAP


async def publish_for(dsn: str, users: list[dict[str, str]], counts: list[int]) -> dict[int, int]:
    """Publish counts[i] events for user i (the workers' code path); the last id of each user."""
    index = {uuid.UUID(u["user"]): i for i, u in enumerate(users)}
    todo = [
        Event.of(
            DocumentStatusUpdated(
                workspace_id=uuid.UUID(u["workspace"]), document_id=uuid.uuid4(), status="parsing", error=None
            )
        )
        for u, count in zip(users, counts, strict=True)
        for _ in range(count)
    ]
    last: dict[int, int] = {}
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for start in range(0, len(todo), PUBLISH_BATCH):
            async with conn.transaction():
                ids = await publish_and_number(conn, todo[start : start + PUBLISH_BATCH])
            for user_id, numbers in ids.items():
                last[index[user_id]] = max(last.get(index[user_id], 0), *numbers)
    return last


def somaxconn() -> int:
    """The kernel's cap on any listen backlog."""
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def shipped_backlog() -> int:
    """The backlog rag-api asks for (API_LISTEN_BACKLOG's default), as the kernel caps it."""
    return min(int(ApiSettings.model_fields["api_listen_backlog"].default), somaxconn())


def listen_overflows() -> int:
    """TcpExt ListenOverflows of the machine: SYNs dropped because an accept queue was full."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


# -- one storm ----------------------------------------------------------------------------------


class Storms:
    """The clients, the api and what each user has received so far."""

    def __init__(
        self, bench: Bench, api: Api, dsn: str, users: list[dict[str, str]], clients: list[Child]
    ) -> None:
        self.bench = bench
        self.api = api
        self.dsn = dsn
        self.users = users
        self.clients = clients
        self.targets: dict[int, int] = {}  # user index -> the id every socket must reach
        self.sampler = ActivitySampler(bench.admin_dsn, str(conninfo_to_dict(dsn)["dbname"]))
        self.sockets = len(users) * SOCKETS_PER_USER

    def send_all(self, command: dict[str, Any]) -> None:
        for client in self.clients:
            client.send(command)

    async def gather(self, kind: str, timeout: float) -> list[dict[str, Any]]:
        return [await c.expect(kind, timeout=timeout) for c in self.clients]

    async def connect_live(self) -> float:
        """Every socket connects live (100 handshakes at a time per process); seconds taken."""
        started = time.monotonic()
        self.send_all({"t": "go", "resume": False, "targets": {}, "timeout": STORM_TIMEOUT, "parallel": 100})
        done = await self.gather("done", STORM_TIMEOUT + 60)
        check(done, "live connect")
        return time.monotonic() - started

    async def publish_live(self, counts: list[int]) -> None:
        self.targets = await publish_for(self.dsn, self.users, counts)
        self.send_all({"t": "wait", "targets": self.targets, "timeout": 120})
        check(await self.gather("reached", 180), "live events")

    async def run(
        self,
        gap: bool,
        parallel: int = 0,
        before: bool = False,
        profile_out: Path | None = None,
        profile_s: float = 0.0,
    ) -> dict[str, Any]:
        """Stop the api, publish the gap (or not), start it (as shipped, or as it was
        `before` the storm fixes), let every socket resume (all at once, or `parallel`
        handshakes at a time per client process); figures."""
        load = os.getloadavg()[0]
        rss_old = self.api.status_kib("VmRSS")
        self.send_all({"t": "parked", "timeout": 60})
        await self.gather("armed", 30)
        shutdown_s = await self.api.stop()
        parked = await self.gather("parked", 90)
        shutdown_closes: Counter[str] = Counter()
        for p in parked:
            shutdown_closes.update(p["closes"])
        if sum(p["count"] for p in parked) != self.sockets:
            raise RuntimeError(f"not every socket was closed by the shutdown: {parked}")
        reached = dict(self.targets)  # what every socket held at the shutdown
        gap_events = 0
        if gap:
            counts = [gap_of(i) for i in range(len(self.users))]
            gap_events = sum(counts)
            self.targets = await publish_for(self.dsn, self.users, counts)
        ready_ns = await self.api.start(before)
        pid = self.api.pid
        backlog = self.api.listen_backlog()
        rss_before, hwm_before = self.api.status_kib("VmRSS"), self.api.status_kib("VmHWM")
        cpu0 = cpu_seconds(pid)
        overflows0 = listen_overflows()
        sampling = None
        if profile_out is not None:
            sampling = asyncio.create_task(profiling.record(pid, profile_s, profile_out))
        self.sampler.start()
        go_ns = now_ns()
        self.send_all(
            {
                "t": "go",
                "resume": True,
                "targets": self.targets,
                "timeout": STORM_TIMEOUT,
                "parallel": parallel,
            }
        )
        done = await self.gather("done", STORM_TIMEOUT + 60)
        peak_conns, peak_active, listening, samples = await self.sampler.stop()
        cpu1 = cpu_seconds(pid)
        overflows1 = listen_overflows()
        rss_after, hwm_after = self.api.status_kib("VmRSS"), self.api.status_kib("VmHWM")
        # Pool checkouts the api gave up: the replay's log read (`_fill`, after the pool's 5 s:
        # it sleeps 1 s and retries, the socket stays open) and the position read (the hello's
        # closes 1011, a later re-read retries).
        gave_up = self.api.log_events(*GAVE_UP_EVENTS)
        if sampling is not None:
            await sampling
        last_done = max(max(d["done_ns"]) for d in done)
        finished = [(ns - ready_ns) / 1e9 for d in done for ns in d["done_ns"] if ns]
        hellos = [(ns - ready_ns) / 1e9 for d in done for ns in d["hello_ns"] if ns]
        handshakes = [
            (o - s) / 1e9 for d in done for s, o in zip(d["started_ns"], d["open_ns"], strict=True) if o and s
        ]
        closes: Counter[str] = Counter()
        for d in done:
            closes.update(d["closes"])
        storm_s = (last_done - ready_ns) / 1e9
        expected = sum(
            (self.targets[u] - reached.get(u, 0)) * SOCKETS_PER_USER for u in range(len(self.users))
        )
        return {
            "gap_events": float(gap_events),
            "frames_expected": float(expected),
            "storm_s": storm_s,
            "go_delay_ms": (go_ns - ready_ns) / 1e6,
            "p50_s": percentile(finished, 50),
            "p99_s": percentile(finished, 99),
            "hello_p50_s": percentile(hellos, 50),
            "hello_last_s": max(hellos, default=float("nan")),
            "handshake_p50_s": percentile(handshakes, 50),
            "handshake_max_s": max(handshakes, default=float("nan")),
            "incomplete": float(sum(d["incomplete"] for d in done)),
            "violations": float(sum(d["violations"] for d in done)),
            "examples": [e for d in done for e in d["examples"]][:5],
            "resyncs": float(sum(d["resyncs"] for d in done)),
            "epoch_changes": float(sum(d["epoch_changes"] for d in done)),
            "attempts": float(sum(d["attempts"] for d in done)),
            "reconnects": float(sum(d["reconnects"] for d in done)),
            "closes": dict(closes),
            "shutdown_closes": dict(shutdown_closes),
            "shutdown_s": shutdown_s,
            "peak_pg": float(peak_conns),
            "peak_pg_active": float(peak_active),
            "pg_listening": float(listening),
            "server_errors": float(closes.get("1011", 0)),
            "pg_samples": float(samples),
            "api_cpu_s": cpu1 - cpu0,
            "api_core_share": (cpu1 - cpu0) / storm_s if storm_s > 0 else float("nan"),
            "client_cpu_max_share": max(d["cpu_s"] for d in done) / (storm_s + 1.0),
            "client_cpu_s": sum(d["cpu_s"] for d in done),
            "rss_old_mib": rss_old / 1024,
            "rss_before_mib": rss_before / 1024,
            "hwm_before_mib": hwm_before / 1024,
            "rss_after_mib": rss_after / 1024,
            "hwm_after_mib": hwm_after / 1024,
            "listen_overflows": float(overflows1 - overflows0),
            "listen_backlog": float(backlog),
            "load_1m": load,
            "load_1m_after": os.getloadavg()[0],
            "fill_failed": float(gave_up["realtime_fill_failed"]),
            "position_failed": float(gave_up["realtime_position_failed"]),
        }


def check(answers: list[dict[str, Any]], what: str) -> None:
    bad = [a for a in answers if a["incomplete"] or a["violations"]]
    if bad:
        raise RuntimeError(
            f"{what}: {sum(a['incomplete'] for a in bad)} sockets incomplete, "
            f"{sum(a['violations'] for a in bad)} violations: {[a['examples'] for a in bad]}"
        )


# -- the micro-measurement of the stream-position query --------------------------------------


async def stream_costs(dsn: str, users: list[dict[str, str]], rounds: int) -> dict[str, float]:
    """eventbus_stream() (INSERT ... ON CONFLICT, then SELECT) against a read-only SELECT.

    Measured three ways on a connection like the pool's (autocommit, auto-prepared): the
    round trip per call; the server's time per call (all users in one statement, so the
    round trip is paid once); and what each writes (WAL bytes, whether a transaction id is
    assigned, which would make every read's commit a WAL flush with synchronous_commit on).
    """
    ids = [uuid.UUID(u["user"]) for u in users]
    queries = {
        "stream": SELECT_STREAM,
        "read-only": READ_ONLY_STREAM,
        "read-only function": READ_ONLY_FUNCTION,
        "after": SELECT_AFTER,
    }
    trips: dict[str, list[float]] = {k: [] for k in queries}
    server: dict[str, list[float]] = {"stream": [], "read-only function": [], "epoch": []}
    wal: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(CREATE_READ_ONLY_FUNCTION)
        for name in ("stream", "read-only", "read-only function"):  # warm: plans prepared, pages cached
            for user_id in ids[:20]:
                await conn.execute(queries[name], (user_id,))
        for r in range(rounds):
            order = list(queries) if r % 2 == 0 else list(reversed(queries))
            for name in order:
                for user_id in ids:
                    params: Any = (
                        {"user_id": user_id, "lo": 1, "hi": 200}  # as EventLog.read_after binds it
                        if name == "after"
                        else (user_id,)
                    )
                    t0 = time.perf_counter()
                    cur = await conn.execute(queries[name], params)
                    await cur.fetchall()
                    trips[name].append((time.perf_counter() - t0) * 1e6)
        for _ in range(max(3, rounds)):
            for name, body in (
                ("stream", "SELECT count(*) FROM unnest(%s::uuid[]) AS u(id), LATERAL eventbus_stream(u.id)"),
                (
                    "read-only function",
                    "SELECT count(*) FROM unnest(%s::uuid[]) AS u(id), LATERAL pg_temp.stream_read_only(u.id)",
                ),
            ):
                t0 = time.perf_counter()
                await conn.execute(body, (ids,))
                server[name].append((time.perf_counter() - t0) * 1e6 / len(ids))
            # What every position read pays for the epoch: the lineage (pg_control_system(),
            # the WAL file name) and a sha256, once per call.
            t0 = time.perf_counter()
            await conn.execute(
                "SELECT count(eventbus_epoch(eventbus_lineage(), gen_random_uuid()))"
                " FROM generate_series(1, %s)",
                (len(ids),),
            )
            server["epoch"].append((time.perf_counter() - t0) * 1e6 / len(ids))
        for name in ("stream", "read-only"):
            lsn0 = await _one(conn, "SELECT pg_current_wal_lsn()")
            for user_id in ids:
                await conn.execute(queries[name], (user_id,))
            lsn1 = await _one(conn, "SELECT pg_current_wal_lsn()")
            diff = await _one(conn, "SELECT pg_wal_lsn_diff(%s, %s)", (lsn1, lsn0))
            wal[name] = float(diff) / len(ids)
        async with conn.transaction():
            await conn.execute(SELECT_STREAM, (ids[0],))
            xid = await _one(conn, "SELECT txid_current_if_assigned()")
    return {
        "stream_trip_us": median(trips["stream"]),
        "read_only_trip_us": median(trips["read-only"]),
        "read_only_function_trip_us": median(trips["read-only function"]),
        "after_trip_us": median(trips["after"]),
        "stream_trip_p99_us": percentile(trips["stream"], 99),
        "read_only_trip_p99_us": percentile(trips["read-only"], 99),
        "stream_server_us": median(server["stream"]),
        "read_only_server_us": median(server["read-only function"]),
        "epoch_server_us": median(server["epoch"]),
        "stream_wal_bytes": wal["stream"],
        "read_only_wal_bytes": wal["read-only"],
        "stream_assigns_xid": 0.0 if xid is None else 1.0,
        "calls": float(len(ids) * rounds),
    }


async def _one(conn: psycopg.AsyncConnection[Any], query: str, params: Any = None) -> Any:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


# -- the benchmark ------------------------------------------------------------------------------


# Where a busy sample of the api went, first match over the whole stack wins: (label, frames
# that place it there). A pool checkout's frames are only the checkout (the body of
# `async with pool.connection()` runs in its caller's frame), so they come first.
PROFILE_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "pool checkouts: waiting in the pool's queue, the check_connection round trip, the return",
        ("psycopg_pool/",),
    ),
    (
        "the hello's position read (`EventLog.stream_position`, `Redaction.load`)",
        ("stream_position (", "Redaction.load ("),
    ),
    ("the replay's log reads (`EventLog.read_after`)", ("read_after (",)),
    ("writing events and frames (`Connection`'s write loop, fill, catch-up)", ("realtime/connection.py",)),
    ("the WebSocket protocol (wsproto: framing, permessage-deflate)", ("wsproto/",)),
    (
        "hypercorn and the app's HTTP path (handshake, middleware, endpoint; hypercorn's side of each frame)",
        ("hypercorn/", "h11/", "starlette/", "rag_api/"),
    ),
    ("the event loop itself (asyncio callbacks and timers)", ("asyncio/",)),
    ("psycopg in a stack py-spy cut short (the query unknown)", ("psycopg/",)),
)


# A sample under Connection.serve with one of these frames is the hello's checkout or read.
HELLO_FRAMES = ("psycopg_pool/", "stream_position (", "Redaction.load (")


def _rough(value: float) -> str:
    """Two significant figures: an extrapolation is not worth more."""
    digits = max(len(str(int(value))) - 2, 0)
    return f"{round(value, -digits):,.0f}"


def profile_of(raw: Path, storm_s: float) -> dict[str, Any]:
    """The py-spy summary tables of the profiled storm and its busy samples by PROFILE_PARTS."""
    if not raw.exists():
        return {"table": "(py-spy unavailable)", "storm_s": storm_s}
    parts: Counter[str] = Counter()
    total = idle = checks = hellos = 0
    for frames, n in profiling.samples(raw):
        total += n
        if profiling.is_idle(frames):
            idle += n
            continue
        if any("check_connection (" in frame for frame in frames):
            checks += n
        if any("Connection.serve (" in frame for frame in frames) and any(
            needle in frame for frame in frames for needle in HELLO_FRAMES
        ):
            hellos += n
        for label, needles in PROFILE_PARTS:
            if any(needle in frame for frame in frames for needle in needles):
                parts[label] += n
                break
        else:
            parts["other"] += n
    busy = max(total - idle, 1)
    return {
        "table": profiling.summarise(raw),
        "storm_s": storm_s,
        "samples": total,
        "idle_share": idle / max(total, 1),
        "check_share": checks / busy,  # the pool's check of each connection it hands out
        "hello_share": hellos / busy,  # the hello's checkout and position read
        "parts": {label: n / busy for label, n in parts.most_common()},
    }


def client_files(bench: Bench, users: list[dict[str, str]], processes: int) -> Iterator[Path]:
    """The sockets, dealt round robin over the client processes (a user's sockets spread out)."""
    sockets = [{"user": u["user"], "u": i} for i, u in enumerate(users) for _ in range(SOCKETS_PER_USER)]
    for p in range(processes):
        path = bench.work_dir / f"storm-sockets-{p}.json"
        path.write_text(json.dumps(sockets[p::processes]))
        yield path


async def run(bench: Bench) -> Section:
    runs = bench.runs(3)
    n_users = 100 if bench.quick else 1000
    processes = 2 if bench.quick else 4
    dsn = bench.database("storm")
    api_dsn = make_conninfo(dsn, application_name=APP_NAME)
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    profile: dict[str, Any] = {}
    clients: list[Child] = []
    try:
        users = make_users(dsn, n_users)
        with s3(bench.log_dir) as s3_env:
            api = Api(bench, api_dsn, s3_env)
            try:
                await api.start()
                clients = [
                    await Child.start(
                        "bench.stormclients",
                        api.ws_url,
                        str(path),
                        log=bench.log_dir / f"storm-clients-{p}.log",
                    )
                    for p, path in enumerate(client_files(bench, users, processes))
                ]
                storms = Storms(bench, api, api_dsn, users, clients)
                connect_s = await storms.connect_live()
                await storms.publish_live([WARM] * n_users)
                for _ in range(runs):
                    for kind, (gap, parallel, before) in KINDS.items():
                        results[kind].append(await storms.run(gap, parallel, before))
                if bench.profile:  # an extra, unmeasured gap storm with py-spy on the new api
                    out = bench.work_dir / "storm.prof"
                    seconds = median([r["storm_s"] for r in results["gap"]]) + 1.0
                    profiled = await storms.run(True, profile_out=out, profile_s=seconds)
                    profile = profile_of(out, profiled["storm_s"])
            finally:
                for client in clients:
                    await client.stop(timeout=60)
                await api.stop()
        costs = await stream_costs(dsn, users, 2 if bench.quick else 5)
    finally:
        bench.drop_database(dsn)
    failures = [
        f"{kind} storm {i + 1}: {r['incomplete']:.0f} sockets short of their last id, "
        f"{r['violations']:.0f} ids out of sequence {r['examples']}"
        for kind, rs in results.items()
        for i, r in enumerate(rs)
        if r["incomplete"] or r["violations"]
    ]
    if failures:
        raise RuntimeError("storm: events lost, duplicated or out of order: " + "; ".join(failures))
    return section(results, costs, profile, connect_s, n_users, processes, runs)


def section(
    results: dict[str, list[dict[str, Any]]],
    costs: dict[str, float],
    profile: dict[str, Any],
    connect_s: float,
    n_users: int,
    processes: int,
    runs: int,
) -> Section:
    """The section from the figures alone (so that it can be rewritten from a --json file)."""
    med = functools.partial(median_of, results)
    sockets = n_users * SOCKETS_PER_USER
    bound = POOL_MAX_SIZE + ApiSettings.model_fields["answer_concurrency"].default
    gap, base, before = med("gap", "storm_s"), med("none", "storm_s"), med("before", "storm_s")
    rows = [
        Row(
            "storm",
            f"{sockets:,} resumes with a gap: all delivered",
            gap,
            "s",
            runs=[r["storm_s"] for r in results["gap"]],
        ),
        Row(
            "storm",
            f"{sockets:,} resumes, gap 0 (baseline)",
            base,
            "s",
            runs=[r["storm_s"] for r in results["none"]],
        ),
        Row("storm", "gap storm / baseline", gap / base if base else float("nan"), "x"),
        Row(
            "storm",
            "the same gap storm, api before 2ca27b9 (backlog 100, 5 s hello checkout)",
            before,
            "s",
            runs=[r["storm_s"] for r in results["before"]],
        ),
        Row("storm", "gap storm before / after the fixes", before / gap if gap else float("nan"), "x"),
        Row(
            "storm",
            f"{sockets:,} resumes with a gap, {PACED} handshakes at a time per client",
            med("paced", "storm_s"),
            "s",
            runs=[r["storm_s"] for r in results["paced"]],
        ),
        Row(
            "storm",
            "resumes closed 1011 in the gap storm",
            med("gap", "server_errors"),
            "",
            "0",
            max(r["server_errors"] for r in results["gap"]) == 0,
            [r["server_errors"] for r in results["gap"]],
        ),
        Row(
            "storm",
            "SYNs dropped (ListenOverflows) in the gap storm",
            med("gap", "listen_overflows"),
            "",
            "0",
            max(r["listen_overflows"] for r in results["gap"]) == 0,
            [r["listen_overflows"] for r in results["gap"]],
        ),
        Row(
            "storm",
            "1011 closes in the same gap storm, api before the fixes",
            med("before", "server_errors"),
            "",
            runs=[r["server_errors"] for r in results["before"]],
        ),
        Row(
            "storm",
            "SYNs dropped in the same gap storm, api before the fixes",
            med("before", "listen_overflows"),
            "",
            runs=[r["listen_overflows"] for r in results["before"]],
        ),
        Row(
            "storm",
            "replay log reads given up after the pool's 5 s (retried), gap storm",
            med("gap", "fill_failed"),
            "",
            runs=[r["fill_failed"] for r in results["gap"]],
        ),
        Row(
            "storm",
            "the same, api before the fixes",
            med("before", "fill_failed"),
            "",
            runs=[r["fill_failed"] for r in results["before"]],
        ),
        Row(
            "storm",
            "api CPU per gap storm, before / after the fixes",
            med("before", "api_cpu_s") / med("gap", "api_cpu_s"),
            "x",
        ),
        Row(
            "storm",
            "api CPU per storm, gap / baseline",
            med("gap", "api_cpu_s") / med("none", "api_cpu_s"),
            "x",
        ),
        Row(
            "storm",
            "ids lost, duplicated or out of order",
            sum(r["violations"] + r["incomplete"] for rs in results.values() for r in rs),
            "",
            "0",
            True,  # run() raised otherwise
        ),
        Row(
            "storm",
            "peak Postgres connections of the api (gap storm)",
            med("gap", "peak_pg"),
            "",
            f"≤ {bound + 2} (pool + 2 listeners)",
            max(r["peak_pg"] for rs in results.values() for r in rs) <= bound + 2,
            [r["peak_pg"] for r in results["gap"]],
        ),
        Row(
            "storm",
            "api peak RSS (VmHWM) after the gap storm",
            med("gap", "hwm_after_mib"),
            "MiB",
            runs=[r["hwm_after_mib"] for r in results["gap"]],
        ),
        Row(
            "storm",
            "eventbus_stream() / the same without its INSERT, server time",
            costs["stream_server_us"] / costs["read_only_server_us"],
            "x",
        ),
    ]
    table = [
        "| storm | api's backlog | frames replayed | all resumed | p50 / p99 socket | last hello |"
        " handshake p50 / max | SYN overflows | 1011 closes (retried) | replay reads given up (retried) |"
        " peak PG conns (active, LISTEN) |"
        " api CPU | busiest client | api RSS: old → ready → peak → after | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "gap": f"gap {GAP} (1 user in {LARGE_EVERY}: {LARGE_GAP}), all at once",
        "none": "gap 0 (baseline), all at once",
        "paced": f"gap as above, {PACED} handshakes at a time per client process",
        "before": f"gap as above, all at once; the api before 2ca27b9 ({BEFORE_HELLO_CHECKOUT:g} s hello checkout)",
    }
    for key, label in labels.items():
        table.append(
            f"| {label} | {med(key, 'listen_backlog'):,.0f} | {med(key, 'frames_expected'):,.0f} |"
            f" {med(key, 'storm_s'):.1f} s |"
            f" {med(key, 'p50_s'):.1f} / {med(key, 'p99_s'):.1f} s | {med(key, 'hello_last_s'):.1f} s |"
            f" {med(key, 'handshake_p50_s'):.2f} / {med(key, 'handshake_max_s'):.1f} s |"
            f" {med(key, 'listen_overflows'):,.0f} | {med(key, 'server_errors'):,.0f} |"
            f" {med(key, 'fill_failed'):,.0f} |"
            f" {med(key, 'peak_pg'):.0f} ({med(key, 'peak_pg_active'):.0f}, {med(key, 'pg_listening'):.0f}) |"
            f" {med(key, 'api_cpu_s'):.1f} s, {med(key, 'api_core_share') * 100:.0f} % of a core |"
            f" {med(key, 'client_cpu_max_share') * 100:.0f} % of a core |"
            f" {med(key, 'rss_old_mib'):.0f} → {med(key, 'rss_before_mib'):.0f} → {med(key, 'hwm_after_mib'):.0f}"
            f" → {med(key, 'rss_after_mib'):.0f} MiB | {med(key, 'load_1m'):.1f} |"
        )
    table += [
        "",
        "The stream-position query, measured on its own in the same run (one connection like the pool's: "
        f"autocommit, prepared; {n_users:,} users, median of {costs['calls']:,.0f} calls):",
        "",
        "| query | round trip p50 (p99) | server time per call | WAL per call |",
        "|---|---|---|---|",
        f"| `eventbus_stream()` (INSERT ... ON CONFLICT DO NOTHING, then SELECT) | "
        f"{costs['stream_trip_us']:.0f} µs ({costs['stream_trip_p99_us']:.0f} µs) | "
        f"{costs['stream_server_us']:.1f} µs | {costs['stream_wal_bytes']:.0f} B |",
        f"| the same plpgsql function without the INSERT | {costs['read_only_function_trip_us']:.0f} µs |"
        f" {costs['read_only_server_us']:.1f} µs | |",
        f"| a plain read-only SELECT of the same row | {costs['read_only_trip_us']:.0f} µs "
        f"({costs['read_only_trip_p99_us']:.0f} µs) | | {costs['read_only_wal_bytes']:.0f} B |",
        f"| `SELECT_AFTER` (the replay itself, up to 200 rows) | {costs['after_trip_us']:.0f} µs | | |",
        f"| of which in every position read: the epoch (`eventbus_lineage()` + sha256) | |"
        f" {costs['epoch_server_us']:.1f} µs | |",
    ]
    if profile.get("table"):
        table += [
            "",
            "py-spy on the api as shipped during an extra gap storm (made after the measured ones, "
            f"{profile['storm_s']:.1f} s):",
            "",
            profile["table"],
        ]
    if profile.get("parts"):
        table += [
            "",
            "| where the busy samples of that storm went (a sample counts once, first match) | share |",
        ]
        table += ["|---|---|"]
        table += [f"| {name} | {share * 100:.0f} % |" for name, share in profile["parts"].items()]
    loads = [r["load_1m"] for rs in results.values() for r in rs]
    method = (
        f"{n_users:,} users, each the only member of a workspace of its own, {SOCKETS_PER_USER} WebSockets "
        f"each ({sockets:,} sockets), held by {processes} client processes (`bench.stormclients`, the "
        f"`websockets` library, permessage-deflate offered as browsers do) so that the api process is "
        f"measured alone. One api process at a time on a fixed port. The sockets connect live ({connect_s:.0f} s, "
        f"100 handshakes at a time per process) and receive {WARM} events each. Then, {runs} times each, "
        f"interleaved: the api is stopped with SIGTERM (it closes every socket with 1001; the clients park), "
        f"events are published with `rag_eventbus.publish` while it is down ({GAP} per user, {LARGE_GAP} for "
        f"one user in {LARGE_EVERY}; none for the baseline), a new api process starts on the same port, and "
        f"as soon as its `/readyz` answers 200 (polled every 20 ms) every socket reconnects at once, no "
        f"concurrency limit, with `last_event_id` and `epoch` of its hello. Timed from that first 200 to the "
        f"last socket holding every id up to its user's last (for gap 0: its hello). Every socket checks "
        f"that each event id is its last + 1 and that it ends at its user's last id; any gap, duplicate, "
        f"out-of-order id, `resync_required` or error frame fails the bench. A socket closed or refused "
        f"during the storm retries after 0.2-1 s with its last id (counted as retries). The storms: the gap "
        f"storm and the baseline against `rag-api` as shipped (API_LISTEN_BACKLOG {shipped_backlog():,}, "
        f"a connection waits up to {HELLO_CHECKOUT_SECONDS:g} s for the pool connection that reads its "
        f"hello position, and as long for its replay's); the gap storm with the clients pacing themselves ({PACED} handshakes in flight "
        f"per client process; the bound covers the handshake, not the hello and replay after it); and the "
        f"gap storm against the api as it was before 2ca27b9, run by `python -m bench.storm serve`: rag-api "
        f"with API_LISTEN_BACKLOG={BEFORE_BACKLOG} (hypercorn's own default, which rag-api used) and "
        f"`rag_api.realtime.connection.HELLO_CHECKOUT_SECONDS` set to {BEFORE_HELLO_CHECKOUT:g} s (the "
        f"pool's checkout timeout, POOL_CHECKOUT_TIMEOUT, which the hello and the replay used before), nothing else. The "
        f"api's backlog column is the listening socket's as the kernel holds it (`ss -ltn`), read at each "
        f"start. SYN overflows are the machine's TcpExt ListenOverflows counter over the storm. "
        f"pg_stat_activity is sampled every {SAMPLE_SECONDS * 1000:.0f} ms from the bench process for the "
        f"api's backends (its DATABASE_URL carries application_name={APP_NAME}). RSS from /proc: VmRSS of "
        f"the old api holding the sockets, of the new one at ready, its VmHWM (peak) and VmRSS after. The "
        f"stream-position query is measured on its own after the storms, on the same database. The load "
        f"column is the machine's 1-minute load average as each storm began (other sessions share the "
        f"machine): {min(loads, default=0):.1f} to {max(loads, default=0):.1f} over this run's storms."
    )
    limits = storm_limits(results, costs, profile, bound, sockets)
    return Section(
        "storm",
        "8. Reconnect storm",
        rows,
        method,
        limits=limits,
        extra="\n".join(table),
        details={
            "runs": results,
            "stream_costs": costs,
            "connect_s": connect_s,
            "profile": profile,
            "n_users": n_users,
            "processes": processes,
            "runs_per_kind": runs,
        },
    )


def _stream_share(results: dict[str, list[dict[str, Any]]], costs: dict[str, float]) -> dict[str, float]:
    """Postgres time of eventbus_stream() in a gap storm, from the per-call server time.

    A gap resume calls it twice (the hello's position, then `read_after` before the
    replay), a gap-0 resume once."""
    storm_s = median([r["storm_s"] for r in results["gap"]])
    calls = 2 * median([r["attempts"] for r in results["gap"]])  # connections made, retries included
    stream_s = calls * costs["stream_server_us"] / 1e6
    saved_s = calls * (costs["stream_server_us"] - costs["read_only_server_us"]) / 1e6
    return {"calls": calls, "stream_s": stream_s, "saved_s": saved_s, "storm_s": storm_s}


def storm_limits(
    results: dict[str, list[dict[str, Any]]],
    costs: dict[str, float],
    profile: dict[str, Any],
    bound: int,
    sockets: int,
) -> str:
    """The prose: what the fixes changed, what bounds the storm now, what is left."""
    med = functools.partial(median_of, results)
    closes: Counter[str] = Counter()
    shutdown: Counter[str] = Counter()
    for rs in results.values():
        for r in rs:
            closes.update(r["closes"])
            shutdown.update(r["shutdown_closes"])
    share = _stream_share(results, costs)
    gap, base, before, paced = (med(k, "storm_s") for k in ("gap", "none", "before", "paced"))
    gap_cpu, base_cpu, before_cpu = (med(k, "api_cpu_s") for k in ("gap", "none", "before"))
    frames = med("gap", "frames_expected")
    errors_after = sum(r["server_errors"] for k in ("gap", "none", "paced") for r in results[k])
    overflows_after = sum(r["listen_overflows"] for k in ("gap", "none", "paced") for r in results[k])
    hello_last = med("gap", "hello_last_s")
    text = (
        f"What the fixes changed, measured in this run: the same gap storm ({sockets:,} sockets, "
        f"{frames:,.0f} frames to replay) took {before:.1f} s against the api as it was before 2ca27b9 and "
        f"{gap:.1f} s against the api as shipped ({before / gap:.1f}x, medians of "
        f"{len(results['gap'])}); the kernel dropped {med('before', 'listen_overflows'):,.0f} SYNs per storm "
        f"on the old backlog of {BEFORE_BACKLOG} and {med('gap', 'listen_overflows'):,.0f} on "
        f"{shipped_backlog():,} (slowest handshake {med('before', 'handshake_max_s'):.1f} s against "
        f"{med('gap', 'handshake_max_s'):.1f} s: a dropped SYN is retransmitted after 1 s, then 2, 4 ... s "
        f"more); {med('before', 'server_errors'):,.0f} resumes per storm were closed with 1011 because the "
        f"hello's position read gave up after {BEFORE_HELLO_CHECKOUT:g} s against "
        f"{med('gap', 'server_errors'):,.0f} now (in all of this run's storms on the shipped api: "
        f"{errors_after:,.0f} 1011 closes and {overflows_after:,.0f} dropped SYNs); and the api spent "
        f"{gap_cpu:.1f} s of CPU on the storm against {before_cpu:.1f} s before ({before_cpu / gap_cpu:.2f}x)"
        + (
            ": a resume closed with 1011 was paid for twice or more, handshake, hello and all. "
            if med("before", "server_errors")
            else ". "
        )
        + "No id was lost, repeated or out of order in any storm. Against the baseline (the same storm "
        f"with nothing to replay, {base:.1f} s, {base_cpu:.1f} s of api CPU) the gap storm is "
        f"{gap / base:.2f}x the time and {gap_cpu / base_cpu:.2f}x the CPU: {gap_cpu / sockets * 1000:.1f} ms "
        f"of api CPU per socket with its {frames / sockets:.0f} frames, {base_cpu / sockets * 1000:.1f} ms "
        f"with none. "
    )
    loads = [r["load_1m"] for rs in results.values() for r in rs]
    text += (
        f"What bounds it now is the api's one event loop, on cores it shares: the api's CPU over the gap "
        f"storm was {med('gap', 'api_core_share') * 100:.0f} % of a core (CPU over storm time; the 2 cores "
        f"also ran Postgres, the clients, whose busiest process used "
        f"{med('gap', 'client_cpu_max_share') * 100:.0f} % of a core, and other sessions, at a load average "
        f"of {median(loads):.1f}), while Postgres was nearly idle (at most "
        f"{med('gap', 'peak_pg_active'):.0f} of the api's backends active in any 50 ms sample). Every "
        f"connection's work queues behind that loop, and the pool's connections with it (at most {bound}, "
        f"held by tasks waiting for the loop, not by queries): the last hello came {hello_last:.1f} s after "
        f"ready, and those hellos now wait in the pool's queue instead of being closed. "
    )
    fills, fills_before = med("gap", "fill_failed"), med("before", "fill_failed")
    if fills:
        by_run = ", ".join(
            f"{r['fill_failed']:,.0f} in {r['storm_s']:.0f} s"
            for r in sorted(results["gap"], key=lambda r: r["fill_failed"])
        )
        text += (
            f"The pool's wait still ran out: the hello and the replay's log read that follows it "
            f"(`Connection._fill`) wait up to {HELLO_CHECKOUT_SECONDS:g} s for the pool, and {fills:,.0f} log reads per "
            f"gap storm (median; {fills / sockets:.1f} per socket) gave up (`realtime_fill_failed` in the "
            f"api's log), slept {RETRY_DELAY:g} s and tried again ({fills_before:,.0f} before the fixes"
            + (
                ", when more of the sockets were closed before they got that far"
                if fills_before < fills
                else ""
            )
            + "). Nothing is lost (the socket "
            f"stays open, its gap known), but each costs its socket {HELLO_CHECKOUT_SECONDS + RETRY_DELAY:g} s "
            f"and puts one more waiter in the pool's queue; the gap storms with more of them took longer "
            f"({by_run}), and the baseline, with nothing to replay, has none. The gap storm's extra api CPU "
            f"over the baseline ({gap_cpu - base_cpu:.1f} s, at the "
            f"{med('gap', 'api_core_share') * 100:.0f} % of a core the api got) would account for its extra "
            f"{gap - base:.1f} s as well, so what the retries add on their own is not told apart here. "
        )
    else:
        text += (
            f"No replay log read (`Connection._fill`, which waits up to {HELLO_CHECKOUT_SECONDS:g} s for the "
            "pool, as the hello does) gave up in the gap storm. "
        )
    hello_part = 0.0
    if profile.get("parts"):
        parts = profile["parts"]
        top = "; ".join(f"{name}, {value * 100:.0f} %" for name, value in list(parts.items())[:4])
        hello_part = profile.get("hello_share", 0.0)
        text += (
            f"py-spy on the api during an extra gap storm ({profile['samples']:,} samples, "
            f"{profile['idle_share'] * 100:.0f} % idle in select"
            + (": the loop had next to no spare time" if profile["idle_share"] < 0.1 else "")
            + ") puts its busy "
            f"samples, biggest first, in: {top} (the tables above). "
        )
        first, first_share = next(iter(parts.items()))
        text += (
            "No one part dominates: the storm is the sum of each connection's handshake, hello and "
            "replay on one core. "
            if first_share < 0.4
            else f"The first dominates ({first}). "
        )
    text += (
        f"Client-side pacing ({PACED} handshakes at a time per client process) "
        + (
            f"no longer helps: {paced:.1f} s against {gap:.1f} s all at once, "
            if paced >= gap * 0.9
            else f"still shortens it: {paced:.1f} s against {gap:.1f} s all at once, "
        )
        + f"{med('paced', 'server_errors'):,.0f} 1011 closes and {med('paced', 'listen_overflows'):,.0f} "
        "dropped SYNs. "
    )
    text += (
        f"Postgres connections stay bounded by the pool: at most "
        f"{max(r['peak_pg'] for rs in results.values() for r in rs):.0f} backends of the api in any sample, "
        f"that is the pool's {bound} (POOL_MAX_SIZE {POOL_MAX_SIZE} + ANSWER_CONCURRENCY, rag_api/app.py) "
        f"plus {med('gap', 'pg_listening'):.0f} LISTEN connections (the realtime hub's and the answer "
        f"worker's); a storm queues on the pool, it never opens more. "
        f"Close codes the clients saw in the storms: {dict(closes) or 'none'}; at the shutdowns: "
        f"{dict(shutdown)} (the old api took {med('gap', 'shutdown_s'):.1f} s to close its sockets and exit). "
        f"RSS: the new api went from {med('gap', 'rss_before_mib'):.0f} MiB at ready to a peak of "
        f"{med('gap', 'hwm_after_mib'):.0f} MiB in the gap storm ({med('none', 'hwm_after_mib'):.0f} MiB "
        f"in the baseline, {med('before', 'hwm_after_mib'):.0f} MiB before the fixes), about what the old "
        f"process held the same sockets in ({med('gap', 'rss_old_mib'):.0f} MiB). "
        f"`eventbus_stream()` costs {costs['stream_server_us']:.1f} µs of server time per call against "
        f"{costs['read_only_server_us']:.1f} µs for the same function without the INSERT "
        f"({costs['stream_server_us'] / costs['read_only_server_us']:.2f}x; it writes "
        f"{costs['stream_wal_bytes']:.0f} B of WAL and "
        + ("assigns" if costs["stream_assigns_xid"] else "does not assign")
        + f" a transaction id); a gap storm makes about {share['calls']:,.0f} such calls, "
        f"{share['stream_s'] * 1000:.0f} ms of Postgres time in all, of which a read-only variant would save "
        f"{share['saved_s'] * 1000:.0f} ms, {share['saved_s'] / share['storm_s'] * 100:.1f} % of the storm: "
    )
    text += (
        "not worth doing for storms. "
        if share["saved_s"] / share["storm_s"] < 0.05
        else "worth doing for storms. "
    )
    text += (
        "What is left (not done). "
        + (
            f"The replay's checkout waiting as long as the hello's ({HELLO_CHECKOUT_SECONDS:g} s). "
            if fills
            else ""
        )
        + "Reading the positions of many resuming sockets in one query "
        "(`SELECT_STREAMS`, as the hub's catch-up does) instead of one pool checkout and two queries each: "
        + (
            f"the hello's pool checkout and position read (`Connection.serve` up to its first frame) were "
            f"{hello_part * 100:.0f} % of the api's busy samples in the profiled storm, the most such "
            "batching could save of the api's time. "
            if hello_part
            else "not profiled in this run. "
        )
        + (
            f"The pool checks every connection it hands out (`check=AsyncConnectionPool.check_connection` "
            f"in rag_api/app.py: an empty query, one more round trip per checkout), "
            f"{profile['check_share'] * 100:.0f} % of the busy samples; checking only connections that "
            "sat idle would keep the restart-of-Postgres case it is there for. "
            if profile.get("check_share")
            else ""
        )
        + f"The {HELLO_CHECKOUT_SECONDS:g} s hello wait is itself a bound: at this machine's rate (the last "
        f"of {sockets:,} hellos {hello_last:.1f} s after ready) roughly "
        f"{_rough(sockets * HELLO_CHECKOUT_SECONDS / hello_last)} sockets resuming at once on one replica "
        "(a linear extrapolation, not measured) would bring the 1011 closes back. Nor was the bundled "
        "clients' first reconnect window after a 1001 widened (the JavaScript client's first retry falls "
        "between 250 and 500 ms, so a replica's sockets still arrive within a quarter of a second; this "
        "bench's clients arrive at once, the worst case). "
    )
    text += (
        f"**Conditions of this run.** Other sessions shared the 2 cores: the 1-minute load average was "
        f"{min(loads):.1f} to {max(loads):.1f} as the storms began (median {median(loads):.1f}; each storm's "
        f"in the table), so the all-at-once figures swing between runs (the runs are in the Results "
        f"table); the interleaving keeps the variants comparable within the run."
    )
    return text


# -- the api as it was before the storm fixes (`python -m bench.storm serve`) --------------


def serve() -> None:
    """rag-api exactly as `rag-api` runs it, but with the hello's position read given up
    after the pool's 5 s as before 2ca27b9; the caller sets API_LISTEN_BACKLOG=100, the
    other half of the old behaviour, which needs no code."""
    import rag_api.main as api_main
    import rag_api.realtime.connection as connection

    connection.HELLO_CHECKOUT_SECONDS = BEFORE_HELLO_CHECKOUT  # read by every Connection.serve
    api_main.main()


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["serve"]:
        serve()
