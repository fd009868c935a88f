"""The bus's schema objects (the event log, `eventbus_publish`) as SQL migrations.

They ship as package data (`migrations/*.sql`) and are applied by the application's
migration runner before its own, which must also provide the `eventbus_recipients`
view the publish function reads (see migrations/0001_event_log.sql).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg


def migrations() -> list[tuple[str, str]]:
    """(name, sql) pairs in the order they apply, e.g. ("0001_event_log", "...")."""
    root = resources.files("rag_eventbus") / "migrations"
    found = [
        (entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in root.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def install(conn: psycopg.Connection[Any], recipients_sql: str) -> None:
    """Apply every migration, then `recipients_sql` (which creates `eventbus_recipients`).

    Without a ledger: for the tests of the bus and of libraries built on it, which start
    from an empty database. Applications apply `migrations()` through their own runner.
    """
    for _name, sql in migrations():
        conn.execute(sql.encode())
    conn.execute(recipients_sql.encode())
