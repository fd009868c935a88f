"""What every benchmark shares: statistics, databases, processes, the result rows."""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rag_core.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return float(statistics.median(clean)) if clean else math.nan


def median_of(runs: Mapping[str, Sequence[Mapping[str, Any]]], group: str, figure: str) -> float:
    """Median of `figure` over the runs of `group` (each run a dict of figures)."""
    return median([float(run[figure]) for run in runs[group]])


# -- results -------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure of the table: the median over `runs` of one measurement."""

    bench: str
    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target
    runs: list[float] = field(default_factory=list)
    note: str = ""

    def shown(self) -> str:
        return fmt(self.value, self.unit)


def fmt(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"
    if unit == "x":
        return f"{value:.0f}x" if value >= 10 else f"{value:.2f}x"
    if unit == "%":
        return f"{value:.1f} %"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}".strip()
    if abs(value) >= 10:
        return f"{value:.1f} {unit}".strip()
    return f"{value:.2f} {unit}".strip()


@dataclass
class Section:
    """What one benchmark contributes to docs/benchmarks.md."""

    name: str
    title: str
    rows: list[Row]
    method: str
    limits: str
    extra: str = ""  # tables or details in markdown
    details: dict[str, Any] = field(default_factory=dict)  # raw figures, kept in the JSON results
    seconds: float = 0.0


# -- the run's environment -----------------------------------------------------------------


@dataclass
class Bench:
    """Handed to every benchmark: where Postgres is, how long to run, where to put files."""

    admin_dsn: str
    quick: bool
    work_dir: Path
    profile: bool = False

    @property
    def log_dir(self) -> Path:
        path = self.work_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def runs(self, full: int = 3) -> int:
        return 2 if self.quick else full

    def database(self, prefix: str, *, migrated: bool = True) -> str:
        """A fresh database (migrated with our schema unless told otherwise)."""
        name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        dsn = make_conninfo(self.admin_dsn, dbname=name)
        if migrated:
            migrate(dsn)
        return dsn

    def drop_database(self, dsn: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE to its hard limit (children inherit it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Child:
    """A helper process of the bench speaking JSON lines on stdout (`python -m bench.X`)."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, log: Path | None = None) -> None:
        self.proc = proc
        self.name = name
        self.log = log

    @classmethod
    async def start(cls, module: str, *args: str, env: dict[str, str] | None = None, log: Path) -> Child:
        stderr = _append(log)
        proc = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            module,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **(env or {})},
            cwd=str(ROOT),
            limit=2**24,
        )
        stderr.close()
        return cls(proc, module, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def line(self, timeout: float = 60.0) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            code = await self.proc.wait()
            raise RuntimeError(f"{self.name} exited ({code}) before answering")
        return raw.decode().rstrip("\n")

    async def message(self, timeout: float = 60.0) -> dict[str, Any]:
        while True:
            text = await self.line(timeout)
            if text.startswith("{"):
                result: dict[str, Any] = json.loads(text)
                return result

    async def expect(self, kind: str, timeout: float = 60.0) -> dict[str, Any]:
        msg = await self.message(timeout)
        if msg.get("t") != kind:
            raise RuntimeError(f"{self.name}: expected {kind!r}, got {msg}")
        return msg

    def tail(self, lines: int = 25) -> str:
        """The end of the child's log (its stderr), for error messages."""
        if self.log is None:
            return ""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")

    async def stop(self, timeout: float = 20.0) -> None:
        if self.proc.returncode is not None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()  # children exit when stdin closes
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _append(path: Path) -> Any:
    return open(path, "ab")


WARNINGS: list[str] = []  # runs that failed, listed in docs/benchmarks.md


def warn(message: str) -> None:
    WARNINGS.append(message.split("\n", 1)[0])
    print(f"bench: WARNING: {message}", file=sys.stderr, flush=True)


def emit(obj: dict[str, Any]) -> None:
    """A child's answer to the bench: one JSON line on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def stdin_closed() -> None:
    """In a child: returns when the bench closes our stdin (time to stop)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        pass


async def stdin_lines() -> asyncio.Queue[dict[str, Any] | None]:
    """In a child: a queue of JSON commands from the bench; None when stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump() -> None:
        while line := await reader.readline():
            if line.strip():
                await queue.put(json.loads(line))
        await queue.put(None)

    task = asyncio.create_task(pump())
    _keep.add(task)
    return queue


_keep: set[asyncio.Task[Any]] = set()


def now_ns() -> int:
    """Wall clock shared by every process of the machine (CLOCK_REALTIME)."""
    return time.time_ns()
