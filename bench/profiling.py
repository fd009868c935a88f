"""py-spy sampling of a process under load (`python -m bench --profile`), summarised as text."""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

OUR_PACKAGES = ("rag_api", "rag_eventbus", "rag_jobqueue", "rag_core", "rag_devstack", "bench")


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path, rate: int = 250) -> Path | None:
    """Sample `pid` for `seconds` (raw collapsed stacks in `out`); None when py-spy is missing or fails."""
    exe = py_spy()
    if exe is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
    return out if proc.returncode == 0 and _exists(out) else None


def _exists(path: Path) -> bool:
    return path.exists()


def _frame_name(frame: str) -> tuple[str, str]:
    """('function', 'file.py') from py-spy's 'function (path/file.py:line)'."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return name, path


def samples(raw: Path) -> Iterator[tuple[list[str], int]]:
    """(frames, root first, and their sample count) of each stack in py-spy's raw output."""
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            yield stack.split(";"), int(count)


def is_idle(frames: list[str]) -> bool:
    """The stack of an event loop waiting in its selector (no work to do)."""
    leaf_name, leaf_path = _frame_name(frames[-1])
    return leaf_name.endswith(("select", "poll")) and "selectors" in leaf_path


def summarise(raw: Path, top: int = 12) -> str:
    """Markdown: the hottest functions by inclusive and by self time, ours marked."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    idle = 0
    for frames, n in samples(raw):
        total += n
        if is_idle(frames):
            idle += n
            continue
        leaf_name, leaf_path = _frame_name(frames[-1])
        own[f"{leaf_name} ({Path(leaf_path).name})"] += n
        seen: set[str] = set()
        for frame in frames:
            name, path = _frame_name(frame)
            if any(path.startswith(f"{pkg}/") or f"/{pkg}/" in path for pkg in OUR_PACKAGES):
                key = f"{name} ({'/'.join(Path(path).parts[-2:])})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += n
    if not total:
        return "(no samples)"
    busy = total - idle
    lines = [
        f"{total} samples, {100 * idle / total:.0f} % of them idle in the event loop's select; the shares "
        "below are of the busy samples.",
        "",
        "| our function (inclusive) | share |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | {100 * v / max(busy, 1):.0f} % |" for k, v in inclusive.most_common(top)]
    lines += ["", "| hottest leaves (self time) | share |", "|---|---|"]
    lines += [f"| `{k}` | {100 * v / max(busy, 1):.0f} % |" for k, v in own.most_common(top)]
    return "\n".join(lines)
