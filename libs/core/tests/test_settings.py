from __future__ import annotations

import pytest

from rag_core.settings import DatabaseSettings, load_settings
from rag_jobqueue.settings import JobSettings


class WorkerLike(DatabaseSettings, JobSettings):
    pass


def test_missing_and_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("WORKER_CONCURRENCY", "zero")
    with pytest.raises(SystemExit) as exc:
        load_settings(WorkerLike)
    assert exc.value.code == 2
    lines = sorted(capsys.readouterr().err.strip().splitlines())
    assert len(lines) == 2
    assert lines[0] == "configuration error: DATABASE_URL is required"
    assert lines[1].startswith("configuration error: WORKER_CONCURRENCY is invalid")


def test_listen_dsn_defaults_to_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://pool/db")
    monkeypatch.delenv("EVENTBUS_DATABASE_URL", raising=False)
    assert load_settings(WorkerLike).listen_dsn == "postgresql://pool/db"
    monkeypatch.setenv("EVENTBUS_DATABASE_URL", "postgresql://direct/db")
    assert load_settings(WorkerLike).listen_dsn == "postgresql://direct/db"
