"""Steps 1-3: yamllint, rendering with kustomize, strict schema validation; the Secret template."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from tools.k8s_check.report import Obj, Report, object_name, run

# Oldest Kubernetes minor the manifests promise to work on, and the newest the schemas know.
K8S_VERSIONS = ("1.30", "1.37")
PLACEHOLDER = "CHANGE_ME"


# ---------------------------------------------------------------------------------------------
# 1. YAML lint


def lint_yaml(root: Path, k8s_dir: Path, yamllint: str, report: Report) -> None:
    config = k8s_dir / ".yamllint.yaml"
    cmd = [yamllint, "--strict", "-f", "parsable"]
    if config.is_file():
        cmd += ["-c", str(config)]
    result = run([*cmd, str(k8s_dir.relative_to(root))], cwd=root)
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        for line in lines or [f"yamllint exited {result.returncode}"]:
            report.error("yamllint", line)


# ---------------------------------------------------------------------------------------------
# 2. Rendering


def kustomizations(k8s_dir: Path) -> list[Path]:
    dirs = [k8s_dir / "base"] if (k8s_dir / "base" / "kustomization.yaml").is_file() else []
    overlays = k8s_dir / "overlays"
    if overlays.is_dir():
        dirs += sorted(p for p in overlays.iterdir() if (p / "kustomization.yaml").is_file())
    return dirs


def render(kubectl: str, root: Path, directory: Path, report: Report) -> list[Obj] | None:
    where = str(directory.relative_to(root))
    result = run([kubectl, "kustomize", where], cwd=root)
    if result.returncode != 0:
        report.error(where, f"kustomize failed: {result.stderr.strip() or result.stdout.strip()}")
        return None
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = [d for d in yaml.load_all(result.stdout, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        report.error(where, f"rendered output is not YAML: {exc}")
        return None
    objs: list[Obj] = []
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            report.error(where, f"rendered a document that is not a Kubernetes object: {str(doc)[:80]}")
            continue
        objs.append(doc)
    return objs


# ---------------------------------------------------------------------------------------------
# 3. Schemas


def validate_schema(objs: list[Obj], where: str, report: Report) -> None:
    for obj in objs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path) or "(top level)"
                report.error(
                    where, f"{object_name(obj)}: {path}: {exc.message} (Kubernetes {version} schema, strict)"
                )
                break  # one message per object is enough; the other version says the same
            except kubernetes_validate.SchemaNotFoundError as exc:
                report.error(where, f"{object_name(obj)}: {exc.message}")
                break


def secret_keys(template: Path) -> set[str] | None:
    if not template.is_file():
        return None
    doc = yaml.safe_load(template.read_text(encoding="utf-8")) or {}
    return set((doc.get("stringData") or {}).keys()) | set((doc.get("data") or {}).keys())


def check_secret_template(root: Path, template: Path, report: Report) -> None:
    where = str(template.relative_to(root))
    if not template.is_file():
        report.error(where, "missing: the Secret template documents the keys of rag-secrets")
        return
    doc = yaml.safe_load(template.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("kind") != "Secret":
        report.error(where, "must hold one Secret")
        return
    validate_schema([doc], where, report)
    if doc.get("data"):
        report.error(where, "use stringData with CHANGE_ME placeholders, never base64 data")
    for key, value in (doc.get("stringData") or {}).items():
        if PLACEHOLDER not in str(value):
            report.error(where, f"stringData.{key} is not a {PLACEHOLDER} placeholder: never commit a secret")
