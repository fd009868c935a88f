"""What every step shares: the list of problems found, the external tools, one way to run them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


@dataclass
class Tools:
    kubectl: str | None
    yamllint: str | None
    hadolint: str | None


def find_tool(name: str) -> str | None:
    """The tool next to this interpreter (the project's .venv) first, then on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    return shutil.which(name)


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def object_name(obj: Obj) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"
