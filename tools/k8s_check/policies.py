"""Step 4: what a schema cannot express about the rendered objects.

Security context, resources, probes, the grace period against the job lease, HPA/PDB/Service/
Ingress wiring, the pre-deploy Job's independence, and no Secret with values.
"""

from __future__ import annotations

from typing import Any

from tools.k8s_check.report import Obj, Report, object_name

SECRET_NAME = "rag-secrets"
CONFIG_NAME = "rag-config"
API_DEPLOYMENT = "rag-api"
PRE_DEPLOY_LABEL = "rag-engine/rollout"
PRE_DEPLOY_VALUE = "pre-deploy"
# Seconds a worker needs after its drain to release unfinished jobs and exit.
WORKER_RELEASE_SECONDS = 10
WORKLOAD_KINDS = ("Deployment", "Job", "StatefulSet", "DaemonSet")


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
    # KEDA's ScaledObjects (deploy/k8s/components/keda) own a Deployment's count as an HPA does.
    scaled = {_get(s, "spec", "scaleTargetRef", "name") for s in by_kind.get("ScaledObject", [])}
    pdbs = by_kind.get("PodDisruptionBudget", [])
    config_maps = {o["metadata"]["name"] for o in by_kind.get("ConfigMap", [])}

    for secret in by_kind.get("Secret", []):
        report.error(
            where,
            f"{object_name(secret)}: a Secret is rendered; create {SECRET_NAME} out of band "
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
                report.error(
                    where, f"{object_name(cm)}: WORKER_SHUTDOWN_GRACE_SECONDS {value!r} is not a number"
                )

    for obj in objs:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        owner = object_name(obj)
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
        if not targeting and name not in scaled:
            report.error(where, f"{owner}: no HorizontalPodAutoscaler (or KEDA ScaledObject) targets it")
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
                    report.error(where, f"{object_name(h)}: minReplicas must be at least 2 for the api")
        elif selected_by:
            report.error(
                where, f"{owner}: a worker must have no Service, but {object_name(selected_by[0])} selects it"
            )

    deployment_names = {d["metadata"]["name"] for d in deployments}
    for h in hpas:
        target = _get(h, "spec", "scaleTargetRef") or {}
        if target.get("kind") != "Deployment" or target.get("name") not in deployment_names:
            report.error(where, f"{object_name(h)}: scaleTargetRef {target} is not a rendered Deployment")
        if _int(_get(h, "spec", "minReplicas"), 1) > _int(_get(h, "spec", "maxReplicas"), 0):
            report.error(where, f"{object_name(h)}: minReplicas exceeds maxReplicas")
    for s in services:
        if not any(
            _labels_match(_get(s, "spec", "selector"), _get(d, "spec", "template", "metadata", "labels"))
            for d in deployments
        ):
            report.error(where, f"{object_name(s)}: its selector matches no Deployment's pods")
    service_ports = {
        s["metadata"]["name"]: {p.get("name") for p in _get(s, "spec", "ports") or []} for s in services
    }
    for ing in by_kind.get("Ingress", []):
        for rule in _get(ing, "spec", "rules") or []:
            for path in _get(rule, "http", "paths") or []:
                backend = _get(path, "backend", "service") or {}
                svc, port = backend.get("name"), _get(backend, "port", "name")
                if svc not in service_ports:
                    report.error(where, f"{object_name(ing)}: backend Service {svc!r} is not rendered")
                elif port is not None and port not in service_ports[svc]:
                    report.error(where, f"{object_name(ing)}: Service {svc} has no port named {port!r}")
    for ns in by_kind.get("Namespace", []):
        if (_get(ns, "metadata", "labels") or {}).get(PRE_DEPLOY_LABEL) != PRE_DEPLOY_VALUE:
            report.error(where, f"{object_name(ns)}: must carry {PRE_DEPLOY_LABEL}={PRE_DEPLOY_VALUE}")
