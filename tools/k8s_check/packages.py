"""The repository's own packages (libs/*, services/*) and their rag-* dependencies, transitively.

Read from every pyproject.toml, so a new lib is known as soon as it exists.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Package:
    name: str
    directory: str  # relative to the root, e.g. "libs/core"
    local_deps: tuple[str, ...]
    scripts: tuple[str, ...]


def _req_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def local_packages(root: Path) -> dict[str, Package]:
    found: dict[str, tuple[str, list[str], list[str]]] = {}
    for pyproject in sorted([*root.glob("libs/*/pyproject.toml"), *root.glob("services/*/pyproject.toml")]):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        name = _req_name(str(project.get("name", "")))
        deps = [_req_name(str(d)) for d in project.get("dependencies", [])]
        scripts = list((project.get("scripts") or {}).keys())
        found[name] = (str(pyproject.parent.relative_to(root)), deps, scripts)
    return {
        name: Package(name, directory, tuple(d for d in deps if d in found), tuple(scripts))
        for name, (directory, deps, scripts) in found.items()
    }


def closure(packages: dict[str, Package], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in packages:
            continue
        seen.add(name)
        todo.extend(packages[name].local_deps)
    return seen
