"""make dev's choice of backing services (the Docker engine itself is not available here)."""

from __future__ import annotations

import pytest

from rag_devstack.backends import choose_backends, docker_answers


def never() -> bool:
    raise AssertionError("docker must not be pinged when the environment gives both services")


def test_environment_wins_and_docker_is_not_even_asked() -> None:
    choice = choose_backends({"DATABASE_URL": "postgresql://x/y", "S3_ENDPOINT_URL": "http://s3"}, never)
    assert (choice.postgres, choice.s3) == ("env", "env")


def test_testcontainers_when_docker_answers() -> None:
    choice = choose_backends({}, lambda: True)
    assert (choice.postgres, choice.s3) == ("testcontainers", "testcontainers")
    assert "Docker" in choice.describe()


def test_embedded_when_docker_does_not_answer() -> None:
    choice = choose_backends({"S3_ENDPOINT_URL": "https://acct.r2.cloudflarestorage.com"}, lambda: False)
    assert (choice.postgres, choice.s3) == ("embedded", "env")
    assert "embedded Postgres" in choice.describe() and "no Docker engine answered" in choice.describe()


def test_docker_ping_is_quick_and_false_without_an_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    t0 = time.monotonic()
    assert docker_answers(timeout=1.0) is False
    assert time.monotonic() - t0 < 3
