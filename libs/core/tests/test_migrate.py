"""rag-migrate: idempotent, safe when several processes start at once, and a database
migrated before the event bus owned its objects ends with the schema of a fresh one."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg

from rag_core.migrate import CREATE_LEDGER, migrate, migration_files


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
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert sorted(versions) == sorted(v for v, _ in migration_files())
    assert {
        "workspaces",
        "workspace_members",
        "documents",
        "files",
        "parse_jobs",
        "ingest_jobs",
        "chunks",
        "user_streams",
        "user_runs",
        "audience_streams",
        "audience_events",
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


# What the previous head's migrations created for the event bus, as test data: the two
# tables at the end of 0001_core and the function of 0003 (its body does not matter, only
# that 0007 drops it).
PREVIOUS_EVENT_LOG = """
CREATE TABLE user_streams (
    user_id        uuid PRIMARY KEY,
    last_id        bigint NOT NULL DEFAULT 0,
    pruned_through bigint NOT NULL DEFAULT 0
);
CREATE TABLE events (
    user_id    uuid NOT NULL,
    id         bigint NOT NULL,
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);
CREATE INDEX events_created_idx ON events (created_at);
CREATE FUNCTION rag_publish(p_events jsonb)
RETURNS TABLE (user_id uuid, first_id bigint, last_id bigint)
LANGUAGE sql AS 'SELECT NULL::uuid, 0::bigint, 0::bigint WHERE false';
"""
PREVIOUS_HEAD = [f"000{n}_" for n in range(1, 7)]

# Every schema object of ours in `public` (not the vector extension's), by kind.
CATALOG = {
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, column_default, is_nullable
        FROM information_schema.columns WHERE table_schema = 'public'""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')""",
}


def catalog(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {kind: sorted(conn.execute(query).fetchall()) for kind, query in CATALOG.items()}


def test_a_database_of_the_previous_head_upgrades_to_the_schema_of_a_fresh_one(
    empty_database_url: str, database_url: str
) -> None:
    """`database_url` is a fresh migrate (the template); `empty_database_url` is brought to
    the previous head first: the product's files 0001-0006 plus the event log they held."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(CREATE_LEDGER)
        for version, sql in migration_files():
            if version.startswith(tuple(PREVIOUS_HEAD)):
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        conn.execute(PREVIOUS_EVENT_LOG.encode())
    assert migrate(empty_database_url) == [
        "eventbus/0001_event_log",
        "eventbus/0002_stream_epoch",
        "eventbus/0003_event_traceparent",
        "eventbus/0004_audience_streams",
        "eventbus/0005_run_spans_generic_plans",
        "0007_event_recipients",
        "0008_job_traceparent",
        "0009_answer_filters",
    ]
    upgraded, fresh = catalog(empty_database_url), catalog(database_url)
    for kind in CATALOG:
        assert upgraded[kind] == fresh[kind], kind
    assert [f[0] for f in fresh["functions"]] == [
        "eventbus_epoch",
        "eventbus_lineage",
        "eventbus_prune",
        "eventbus_publish",
        "eventbus_stream",
    ]
