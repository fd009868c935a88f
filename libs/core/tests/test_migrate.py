"""rag-migrate: idempotent, and safe when several processes start at once."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from rag_core.migrate import migration_files


def run_migrate(dsn: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rag_core.migrate", "--database-url", dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_concurrent_runs_on_an_empty_database_apply_once(empty_database_url: str) -> None:
    procs = [run_migrate(empty_database_url) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    applied = [out for out, _ in outputs if "applied" in out]
    assert len(applied) == 1, outputs
    assert sum("up to date" in out for out, _ in outputs) == 3
    assert all(err == "" for _, err in outputs), outputs
    with psycopg.connect(empty_database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert versions == [v for v, _ in migration_files()]
    assert {
        "workspaces",
        "workspace_members",
        "documents",
        "files",
        "parse_jobs",
        "ingest_jobs",
        "chunks",
        "user_streams",
        "events",
    } <= tables


def test_second_run_is_a_no_op(empty_database_url: str) -> None:
    assert run_migrate(empty_database_url).wait(60) == 0
    proc = run_migrate(empty_database_url)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "up to date" in out


def test_missing_database_url_is_one_clear_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rag_core.migrate"], capture_output=True, text=True, env={"PATH": "/usr/bin"}
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "configuration error: DATABASE_URL is required"
