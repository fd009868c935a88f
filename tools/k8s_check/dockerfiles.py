"""Step 5: hadolint, and what each service Dockerfile and the .dockerignore must say.

Base image pinned, only its own service and the libs it depends on copied (computed from the
pyproject.toml files), non-root numeric USER, HEALTHCHECK, STOPSIGNAL SIGTERM, exec-form
ENTRYPOINT running the service's script; the .dockerignore allow-list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from tools.k8s_check.packages import Package, closure
from tools.k8s_check.report import Report, run

# python:3.11.<patch>-slim[-<debian>][@sha256:<digest>]
BASE_IMAGE_RE = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
# What the build context may contain (.dockerignore is an allow-list starting with `*`).
DOCKERIGNORE_ALLOWED = {"constraints.txt", "libs/", "services/", "clients/js/src/"}
# Sources a service's package links to outside its own directory: the console's client module
# (rag_api/static/rag-client.js is a symlink to clients/js/src/index.js, the one copy).
EXTRA_SOURCES: dict[str, set[str]] = {"rag-api": {"clients/js/src"}}
DOCKERIGNORE_REQUIRED_EXCLUDES = {"libs/devstack/", "libs/testing/", "**/tests/"}


def dockerfile_instructions(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments) with continuation lines joined and comments skipped."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        line = " ".join(part for part in buffer if part)
        buffer = []
        instruction, _, args = line.partition(" ")
        yield start, instruction.upper(), args.strip()
    if buffer:
        line = " ".join(buffer)
        instruction, _, args = line.partition(" ")
        yield start, instruction.upper(), args.strip()


def copy_sources(args: str) -> tuple[list[str], bool]:
    """Sources of a COPY/ADD and whether it copies from another stage or image (--from)."""
    if args.startswith("["):
        try:
            parts = [str(p) for p in json.loads(args)]
        except json.JSONDecodeError:
            parts = args.split()
    else:
        parts = args.split()
    flags = [p for p in parts if p.startswith("--")]
    paths = [p for p in parts if not p.startswith("--")]
    from_stage = any(f.startswith("--from=") for f in flags)
    return paths[:-1], from_stage


def norm(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or "."


def check_dockerfile(root: Path, service_dir: Path, packages: dict[str, Package], report: Report) -> None:
    dockerfile = service_dir / "Dockerfile"
    where = str(dockerfile.relative_to(root))
    own = next((p for p in packages.values() if p.directory == str(service_dir.relative_to(root))), None)
    if own is None:
        report.error(where, "no pyproject.toml beside it")
        return
    if not dockerfile.is_file():
        report.error(where, "missing")
        return
    needed = closure(packages, own.name)
    for name in sorted(needed):
        if packages[name].directory + "/" in DOCKERIGNORE_REQUIRED_EXCLUDES:
            report.error(
                where, f"{own.name} depends on {name}, dev/test-only code the build context excludes"
            )
    allowed_dirs = {packages[n].directory for n in needed}
    allowed = allowed_dirs | {"constraints.txt"} | EXTRA_SOURCES.get(own.name, set())
    copied: set[str] = set()
    stages: set[str] = set()
    froms = 0
    user = healthcheck = stopsignal = entrypoint = None
    for line, instruction, args in dockerfile_instructions(dockerfile.read_text(encoding="utf-8")):
        here = f"{where}:{line}"
        if instruction == "FROM":
            froms += 1
            words = [w for w in args.split() if not w.startswith("--")]
            image = words[0] if words else ""
            if image not in stages and not BASE_IMAGE_RE.match(image):
                report.error(here, f"base image {image!r} is not python:3.11.<patch>-slim pinned by version")
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
            user = None  # USER is per stage: the last stage's counts
        elif instruction in ("COPY", "ADD"):
            if instruction == "ADD":
                report.error(here, "use COPY, not ADD")
            sources, from_stage = copy_sources(args)
            if from_stage:
                continue
            for source in map(norm, sources):
                copied.add(source)
                if source in allowed:
                    continue
                other = next((p for p in packages.values() if p.directory == source), None)
                if source in (".", "*") or "*" in source:
                    report.error(here, f"copies {source!r}: the whole build context, not only this service")
                elif source.startswith("services/") or (other and other.directory.startswith("services/")):
                    report.error(here, f"copies another service's code: {source}")
                elif other is not None:
                    report.error(here, f"copies {source}, which {own.name} does not depend on")
                else:
                    report.error(here, f"copies {source}, outside the service and the libs it uses")
        elif instruction == "USER":
            user = args
        elif instruction == "HEALTHCHECK":
            healthcheck = args
        elif instruction == "STOPSIGNAL":
            stopsignal = args
        elif instruction == "ENTRYPOINT":
            entrypoint = args
    if froms < 2:
        report.error(where, "must be multi-stage (a builder stage, then a slim runtime stage)")
    for missing in sorted(allowed - copied):
        report.error(
            where, f"does not copy {missing}, which {own.name} needs (pip would look for it on an index)"
        )
    if user is None or user.split(":")[0] in ("root", "0"):
        report.error(where, "the final stage must switch to a non-root USER")
    elif not user.split(":")[0].isdigit():
        report.error(where, f"USER {user}: use a numeric uid so runAsNonRoot can verify it")
    if not healthcheck or healthcheck.upper().startswith("NONE"):
        report.error(where, "no HEALTHCHECK")
    elif "curl" in healthcheck or "wget" in healthcheck:
        report.error(where, "HEALTHCHECK must use python's stdlib, the image has no curl/wget")
    if (stopsignal or "").upper() not in ("SIGTERM", "15"):
        report.error(where, "STOPSIGNAL SIGTERM is missing")
    try:
        command = json.loads(entrypoint) if entrypoint else None
    except json.JSONDecodeError:
        command = None
    if not isinstance(command, list) or not command:
        report.error(where, "ENTRYPOINT must be exec form (a JSON list) so SIGTERM reaches the process")
    elif own.scripts and command[0] not in own.scripts:
        report.error(where, f"ENTRYPOINT runs {command[0]!r}, not the service's script {own.scripts[0]!r}")


def check_dockerignore(root: Path, report: Report) -> None:
    path = root / ".dockerignore"
    if not path.is_file():
        report.error(".dockerignore", "missing: the build context would include .git, .venv, tests...")
        return
    lines = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if not lines or lines[0] != "*":
        report.error(".dockerignore", "must start with `*` and re-include only what the images use")
        return
    included = {line[1:] for line in lines if line.startswith("!")}
    for extra in sorted(included - DOCKERIGNORE_ALLOWED):
        report.error(
            ".dockerignore", f"re-includes {extra!r}; only {sorted(DOCKERIGNORE_ALLOWED)} are needed"
        )
    for needed in sorted(DOCKERIGNORE_REQUIRED_EXCLUDES - set(lines)):
        report.error(".dockerignore", f"must exclude {needed}")


def lint_dockerfiles(root: Path, dockerfiles: list[Path], hadolint: str, report: Report) -> None:
    if not dockerfiles:
        return
    result = run([hadolint, "--no-color", *[str(d.relative_to(root)) for d in dockerfiles]], cwd=root)
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        for line in lines or [f"hadolint exited {result.returncode}"]:
            report.error("hadolint", line)
