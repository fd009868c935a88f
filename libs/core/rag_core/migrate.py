"""`rag-migrate`: apply the event bus's migrations, then the product's, in order, once each.

The bus owns its tables and publish function (`rag_eventbus.schema`); they are recorded
in the ledger as `eventbus/<name>` and apply first, since the product's migrations
provide the view the bus reads its recipients from. The product's files (`migrations/`)
keep their bare names, so databases migrated before the bus owned its objects stay valid.

A session advisory lock serialises concurrent runs (several pods starting at once):
the first applies, the others wait, then find nothing left to do. Each file runs
in its own transaction together with its row in `schema_migrations`.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources

import psycopg

from rag_eventbus.schema import migrations as eventbus_migrations

MIGRATION_LOCK_KEY = 72_616_701  # arbitrary constant: "rag" migrations

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) pairs in the order they apply: the bus's, then the product's."""
    root = resources.files("rag_core") / "migrations"
    product = sorted(
        (entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in root.iterdir()
        if entry.name.endswith(".sql")
    )
    return [(f"eventbus/{name}", sql) for name, sql in eventbus_migrations()] + product


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; return the versions this call applied."""
    applied: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(CREATE_LEDGER)
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rag-migrate", description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    if not args.database_url:
        print("configuration error: DATABASE_URL is required", file=sys.stderr)
        raise SystemExit(2)
    try:
        applied = migrate(args.database_url)
    except psycopg.Error as exc:
        print(f"rag-migrate: failed: {exc}".strip(), file=sys.stderr)
        raise SystemExit(1) from None
    print(f"rag-migrate: applied {', '.join(applied)}" if applied else "rag-migrate: up to date")


if __name__ == "__main__":
    main()
