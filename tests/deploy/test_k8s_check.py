"""`make k8s-check` passes on the real tree and fails, naming the problem, on a broken copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.k8s_check.cli import check
from tools.k8s_check.dockerfiles import (
    EXTRA_SOURCES,
    check_dockerfile,
    check_dockerignore,
    copy_sources,
    dockerfile_instructions,
    norm,
)
from tools.k8s_check.packages import closure, local_packages
from tools.k8s_check.report import Report, Tools, find_tool

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "parse-worker", "ingest-worker")


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.k8s_check", "--root", str(root)],
        cwd=ROOT,  # where `tools` is importable from
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(dest: Path) -> Path:
    """What the check reads: deploy/, the Dockerfiles, every pyproject.toml, constraints, .dockerignore,
    and the services' code (the metrics an alert may name)."""
    shutil.copytree(ROOT / "deploy", dest / "deploy")
    for package in [*ROOT.glob("libs/*/rag_*"), *ROOT.glob("services/*/rag_*")]:
        if package.is_dir():
            target = dest / package.relative_to(ROOT)
            shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in (".dockerignore", "constraints.txt"):
        shutil.copy2(ROOT / name, dest / name)
    for pyproject in [*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")]:
        target = dest / pyproject.parent.relative_to(ROOT)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pyproject, target / "pyproject.toml")
        if (pyproject.parent / "Dockerfile").is_file():
            shutil.copy2(pyproject.parent / "Dockerfile", target / "Dockerfile")
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_real_tree_passes() -> None:
    result = run_check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "k8s-check: ok" in result.stdout
    for overlay in ("overlays/dev", "overlays/prod"):
        assert f"deploy/k8s/{overlay}: rendered" in result.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # A misspelt field in the base: strict schema validation names it, in each overlay.
        (
            "deploy/k8s/base/api-deployment.yaml",
            "imagePullPolicy: IfNotPresent",
            "imagePullPolicyy: IfNotPresent",
            ["Deployment/rag-api", "'imagePullPolicyy' was unexpected", "deploy/k8s/overlays/prod"],
        ),
        # A misspelt field in an overlay's strategic-merge patch is rendered, then rejected.
        (
            "deploy/k8s/overlays/prod/patches/hpa.yaml",
            "  minReplicas: 3",
            "  minReplica: 3",
            ["deploy/k8s/overlays/prod", "HorizontalPodAutoscaler/rag-api", "'minReplica' was unexpected"],
        ),
        # A wrong type.
        (
            "deploy/k8s/base/parse-worker-deployment.yaml",
            "terminationGracePeriodSeconds: 120",
            "terminationGracePeriodSeconds: two-minutes",
            ["Deployment/rag-parse-worker", "terminationGracePeriodSeconds", "'two-minutes' is not of type"],
        ),
    ],
    ids=["unknown-field", "unknown-field-in-patch", "wrong-type"],
)
def test_broken_manifest_fails(tmp_path: Path, file: str, old: str, new: str, expected: list[str]) -> None:
    root = copy_tree(tmp_path)
    edit(root / file, old, new)
    result = run_check(root)
    assert result.returncode == 1, result.stdout + result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert "FAILED" in result.stderr


def policy_errors(root: Path) -> list[str]:
    tools = Tools(find_tool("kubectl"), find_tool("yamllint"), find_tool("hadolint"))
    return check(root, tools, log=False).errors


def test_policy_violations_fail(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    base = root / "deploy/k8s/base"
    edit(
        base / "ingest-worker-deployment.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
    )
    edit(
        base / "parse-worker-deployment.yaml",
        "terminationGracePeriodSeconds: 120",
        "terminationGracePeriodSeconds: 20",
    )
    edit(
        base / "api-deployment.yaml", "  revisionHistoryLimit: 5", "  replicas: 2\n  revisionHistoryLimit: 5"
    )
    edit(base / "secret.template.yaml", 'JWT_SECRET: "CHANGE_ME"', 'JWT_SECRET: "s3cr3t-value"')
    errors = "\n".join(policy_errors(root))
    assert (
        "Deployment/rag-ingest-worker container ingest-worker: securityContext.readOnlyRootFilesystem"
        in errors
    )
    assert (
        "Deployment/rag-parse-worker: terminationGracePeriodSeconds 20 must exceed JOB_LEASE_SECONDS 30"
        in errors
    )
    assert "Deployment/rag-api: spec.replicas is set although an HPA owns the count" in errors
    assert "stringData.JWT_SECRET is not a CHANGE_ME placeholder" in errors


def test_the_optional_keda_and_alert_objects_are_checked(tmp_path: Path) -> None:
    """Schema (the CRDs') and what no schema says, on the prod-keda overlay."""
    root = copy_tree(tmp_path)
    keda = root / "deploy/k8s/components/keda"
    alerts = root / "deploy/k8s/components/alerts/prometheusrule.yaml"
    edit(keda / "scaledobjects.yaml", "FROM parse_jobs", "FROM ingest_jobs")
    edit(keda / "scaledobjects.yaml", "minReplicaCount: 1", "minReplicaCount: 0")
    edit(keda / "scaledobjects.yaml", "pollingInterval: 15", 'pollingInterval: "often"')
    edit(keda / "kustomization.yaml", "  - path: delete-worker-hpas.yaml\n", "")
    edit(alerts, "max by (queue) (rag_queue_oldest_job_age_seconds)", "max by (queue) (rag_queue_oldest_age)")
    errors = "\n".join(policy_errors(root))
    where = "deploy/k8s/overlays/prod-keda"
    assert (
        f"{where}: ScaledObject/rag-parse-worker: data/spec/pollingInterval must be integer (CRD schema)"
        in errors
    )
    edit(keda / "scaledobjects.yaml", 'pollingInterval: "often"', "pollingInterval: 15")
    errors = "\n".join(policy_errors(root))
    assert "ScaledObject/rag-parse-worker: its postgresql trigger must count parse_jobs" in errors
    assert "ScaledObject/rag-parse-worker: minReplicaCount must be at least 1" in errors
    assert "ScaledObject/rag-parse-worker: rag-parse-worker also has an HPA of its own" in errors
    assert "RagQueueBacklog: names metrics no service exports: rag_queue_oldest_age" in errors
    assert all(where in e for e in policy_errors(root)), "only the overlay that uses the components fails"


def test_promql_metric_names_are_found() -> None:
    from tools.k8s_check.crds import metrics_named

    expr = (
        'histogram_quantile(0.99, sum by (le, queue) (rate(rag_api_event_delivery_seconds_bucket{code=~"4408|x"}[5m])))'
        " / on (queue) group_left max without (pod) (rag_queue_depth offset 5m) > 1e3"
    )
    assert metrics_named(expr) == {"rag_api_event_delivery_seconds_bucket", "rag_queue_depth"}


# ---- Dockerfiles: each copies only its own service and the libs it uses


def copied_sources(dockerfile: Path) -> set[str]:
    """Every build-context path a Dockerfile COPYs (not --from another stage)."""
    sources: set[str] = set()
    for _, instruction, args in dockerfile_instructions(dockerfile.read_text(encoding="utf-8")):
        if instruction in ("COPY", "ADD"):
            paths, from_stage = copy_sources(args)
            if not from_stage:
                sources |= {norm(p) for p in paths}
    return sources


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_copies_no_other_service(service: str) -> None:
    sources = copied_sources(ROOT / "services" / service / "Dockerfile")
    assert f"services/{service}" in sources
    others = {f"services/{other}" for other in SERVICES if other != service}
    for source in sources:
        assert source not in (".", "services"), f"{service} copies the whole context: {source}"
        assert not any(source == o or source.startswith(o + "/") for o in others), source
        extra = EXTRA_SOURCES.get(f"rag-{service}", set())  # the console's client module, for the api
        assert (
            source == "constraints.txt"
            or source in extra
            or source.startswith(("libs/", f"services/{service}"))
        ), source
        assert not source.startswith("libs/devstack"), "dev/test-only code in an image"


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_copies_exactly_the_libs_it_depends_on(service: str) -> None:
    packages = local_packages(ROOT)
    own = next(p for p in packages.values() if p.directory == f"services/{service}")
    libs = {packages[n].directory for n in closure(packages, own.name)} - {own.directory}
    copied = {s for s in copied_sources(ROOT / "services" / service / "Dockerfile") if s.startswith("libs/")}
    assert copied == libs


def test_dockerfile_check_catches_another_service_and_a_missing_lib(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    dockerfile = root / "services/api/Dockerfile"
    edit(
        dockerfile,
        "COPY services/api/ services/api/",
        "COPY services/api/ services/api/\nCOPY services/parse-worker/ x/",
    )
    edit(dockerfile, "COPY libs/embedding/ libs/embedding/\n", "")
    edit(dockerfile, 'ENTRYPOINT ["rag-api"]', "ENTRYPOINT rag-api")
    report = Report()
    check_dockerfile(root, root / "services/api", local_packages(root), report)
    errors = "\n".join(report.errors)
    assert "copies another service's code: services/parse-worker" in errors
    assert "does not copy libs/embedding, which rag-api needs" in errors
    assert "ENTRYPOINT must be exec form" in errors


def test_a_service_that_depends_on_a_test_only_lib_fails(tmp_path: Path) -> None:
    """libs/testing and libs/devstack are kept out of the build context: no image can need them."""
    root = copy_tree(tmp_path)
    edit(root / "services/ingest-worker/pyproject.toml", '"rag-core", ', '"rag-core", "rag-testing", ')
    report = Report()
    check_dockerfile(root, root / "services/ingest-worker", local_packages(root), report)
    errors = "\n".join(report.errors)
    assert "rag-ingest-worker depends on rag-testing, dev/test-only code the build context excludes" in errors
    assert "rag-ingest-worker depends on rag-devstack" in errors  # through rag-testing


def test_dockerfile_check_passes_on_real_dockerfiles() -> None:
    report = Report()
    packages = local_packages(ROOT)
    for service in SERVICES:
        check_dockerfile(ROOT, ROOT / "services" / service, packages, report)
    check_dockerignore(ROOT, report)
    assert report.errors == []
