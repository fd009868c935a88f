"""`make dev` refuses clearly, in one line, what the user can fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def test_a_busy_api_port_is_one_clear_line_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "API_PORT": str(port)}
        env.pop("DATABASE_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "rag_devstack.dev"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines == [
        f"[   dev] error: port {port} on 127.0.0.1 is busy; stop what uses it or run: make dev API_PORT=<free port>"
    ]
    assert result.stderr == ""
    assert not (tmp_path / ".dev").exists()


def test_a_missing_python_is_one_clear_line(tmp_path: Path) -> None:
    repo = Path(__file__).parents[2]
    result = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(repo),
            "-f",
            str(repo / "Makefile"),
            "install",
            "PYTHON=python3.99-does-not-exist",
            "VENV=" + str(tmp_path / "venv"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "error: python3.99-does-not-exist not found; install Python 3.11" in result.stderr
