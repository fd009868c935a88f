"""The table printed by `make bench` and docs/benchmarks.md."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import psycopg

from bench.common import ROOT, WARNINGS, Row, Section

VERSIONS = (
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "procrastinate",
    "pgqueuer",
    "hypercorn",
    "starlette",
    "wsproto",
    "websockets",
    "orjson",
    "pydantic",
    "py-spy",
)


def _mark(row: Row) -> str:
    if row.ok is None:
        return ""
    return "yes" if row.ok else "**MISSED**"


def table(sections: list[Section]) -> str:
    rows = [r for s in sections for r in s.rows]
    if not rows:
        return "(no results)"
    headers = ("bench", "figure", "median", "target", "met", "runs")
    lines = [
        (
            r.bench,
            r.name,
            r.shown(),
            r.target,
            {None: "", True: "yes", False: "MISSED"}[r.ok],
            ", ".join(_short(v, r.unit) for v in r.runs),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(out)


def _short(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def machine(admin_dsn: str, postgres_source: str) -> dict[str, Any]:
    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg_version = row[0] if row else "?"
        vec = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
        ).stdout.strip()
    except OSError:
        commit = "?"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_mem_gib(), 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "postgres": pg_version,
        "pgvector": vec[0] if vec else "?",
        "postgres_source": postgres_source,
        "versions": versions,
        "commit": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def as_json(sections: list[Section], machine_info: dict[str, Any], total: float) -> dict[str, Any]:
    return {
        "machine": machine_info,
        "total_seconds": total,
        "sections": [dataclasses.asdict(s) for s in sections],
    }


def markdown(sections: list[Section], m: dict[str, Any], total: float, *, quick: bool) -> str:
    v = m["versions"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand, rerun it. "
        + ("**This is a --quick smoke run: the counts are small and the figures rough.** " if quick else "")
        + f"Run of {m['date']} at commit `{m['commit']}`, {total / 60:.1f} minutes in all.",
        "",
        "## Results",
        "",
        "Every figure is the median over several runs (the runs are listed); peers and baselines were "
        "measured in the same run, interleaved, so that their ratios hold on this noisy machine.",
        "",
        "| benchmark | figure | median | target | met | runs |",
        "|---|---|---|---|---|---|",
    ]
    for section in sections:
        for r in section.rows:
            lines.append(
                f"| {section.title} | {r.name} | {r.shown()} | {r.target} | {_mark(r)} |"
                f" {', '.join(_short(x, r.unit) for x in r.runs)} |"
            )
    if WARNINGS:
        lines += ["", "Runs that failed in this run (left out of the medians):", ""]
        lines += [f"- {w}" for w in WARNINGS]
    lines += [
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores (shared with other tenants: noisy), {m['memory_gib']} GiB",
        f"- Linux {m['kernel']}, Python {m['python']}",
        f"- PostgreSQL {m['postgres']} with pgvector {m['pgvector']}: {m['postgres_source']}; "
        "fsync, synchronous_commit and full_page_writes off (a throwaway cluster), max_connections 300",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- Everything runs on this one machine: Postgres, the processes under test, the load "
        "generators and the clients share the 2 cores.",
        "",
        "## Reproduce",
        "",
        "```",
        "make bench                          # everything (installs requirements-bench.txt first)",
        ".venv/bin/python -m bench wakeup    # one benchmark: " + ", ".join(s.name for s in sections),
        ".venv/bin/python -m bench --quick   # a smoke run (prints, does not rewrite this file)",
        ".venv/bin/python -m bench --no-profile --json out.json   # no py-spy/tracemalloc runs; raw figures",
        "BENCH_DATABASE_URL=postgresql://... make bench   # against another Postgres (superuser, pgvector)",
        "```",
        "",
        "The profiles in the sections below (py-spy samples of our processes, a tracemalloc comparison, an "
        "instrumented wake-up) come from extra runs made after the measured ones; the figures never include "
        "a profiler's overhead. Every benchmark's processes (workers, api replicas, publishers, WebSocket "
        "clients) are separate OS processes started by the bench; their logs go to a temporary directory "
        "(kept with BENCH_KEEP_LOGS=1).",
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", ""]
        lines += [section.method, ""]
        if section.extra:
            lines += [section.extra, ""]
        if section.limits:
            lines += ["**What limits it.** " + section.limits, ""]
        lines += [
            f"Reproduce: `.venv/bin/python -m bench {section.name}` ({section.seconds:.0f} s here).",
            "",
        ]
    return "\n".join(lines)


def merge(existing: str, sections: list[Section], m: dict[str, Any], total: float, *, quick: bool) -> str:
    """docs/benchmarks.md with only `sections` rewritten (a partial `--write-docs` run).

    Their rows of the Results table and their `## title` sections are replaced where they
    stand (appended when new); every other benchmark's figures stay as the last full run wrote them, and
    each rewritten section says which run its figures are from, since it is not the one
    named at the top.
    """
    fresh = markdown(sections, m, total, quick=quick)
    titles = {s.title for s in sections}
    new_rows = _results_rows(fresh)
    stamp = (
        f"Figures of a partial run of {m['date']} at commit `{m['commit']}`"
        + (" (**--quick: small counts, rough figures**)" if quick else "")
        + ", not the full run named at the top."
    )
    rewritten: dict[str, str] = {}
    for title, body in _parts(fresh):
        if title in titles:
            head, _, rest = body.partition("\n\n")
            rewritten[title] = f"{head}\n\n{stamp}\n\n{rest}"
    out: list[str] = []
    for title, body in _parts(existing):
        if title == "Results":
            body = _replace_rows(body, titles, new_rows)
        out.append(rewritten.pop(title, body))  # a rewritten section keeps its place
    out.extend(rewritten.values())
    return "".join(out)


def _parts(text: str) -> list[tuple[str, str]]:
    """(title, text) of each `## ` section, the text before the first one titled ''."""
    parts: list[tuple[str, str]] = []
    title, start = "", 0
    lines = text.splitlines(keepends=True)
    offset = 0
    for line in lines:
        if line.startswith("## "):
            parts.append((title, text[start:offset]))
            title, start = line[3:].strip(), offset
        offset += len(line)
    parts.append((title, text[start:]))
    if not parts[-1][1].endswith("\n"):
        parts[-1] = (parts[-1][0], parts[-1][1] + "\n")
    return parts


def _results_rows(text: str) -> list[str]:
    body = dict(_parts(text)).get("Results", "")
    return [
        line for line in body.splitlines() if line.startswith("| ") and not line.startswith("| benchmark |")
    ]


def _replace_rows(body: str, titles: set[str], rows: list[str]) -> str:
    """The Results part with the rows of `titles` replaced by `rows` (where the first was)."""
    lines = body.splitlines()
    kept: list[str] = []
    at: int | None = None
    last_row = 0
    for line in lines:
        is_row = line.startswith("| ") and not line.startswith("| benchmark |")
        if is_row and line.split(" | ", 1)[0][2:] in titles:
            at = len(kept) if at is None else at
            continue
        kept.append(line)
        if is_row or line.startswith("|---"):
            last_row = len(kept)
    where = at if at is not None else last_row
    return "\n".join(kept[:where] + rows + kept[where:]) + "\n"
