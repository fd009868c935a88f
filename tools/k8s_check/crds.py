"""Steps 3b and 4b: the optional objects of custom kinds (deploy/k8s/components: KEDA, alerts).

Kubernetes' own schemas do not know them, so kubernetes-validate cannot check them: their CRD
schemas, as packaged by kubernetes-models on npm, do (`tools/crds/validate.mjs`, pinned by its
package-lock.json; `make k8s-check` installs it with `npm ci --ignore-scripts`). Then what no
schema can say: a ScaledObject scales a worker that exists, on that worker's own queue table,
never below one replica (NOTIFY wakes running workers only) and never beside an HPA of its own;
every metric an alert names is one the services export (read from their metrics modules).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tools.k8s_check.report import Obj, Report, object_name

CRD_KINDS = frozenset(
    {
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("keda.sh/v1alpha1", "TriggerAuthentication"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
    }
)
VALIDATOR = Path(__file__).resolve().parents[1] / "crds" / "validate.mjs"  # tools/crds, beside us
# A worker Deployment and the job table of its queue (libs/core/rag_core/queues.py).
WORKER_QUEUES = {"rag-parse-worker": "parse_jobs", "rag-ingest-worker": "ingest_jobs"}
# A metric as the code defines it: Counter("rag_jobs_claimed_total", ...), Gauge(\n "rag_...".
_DEFINED = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")
_SUFFIXES = {
    "Counter": ("",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum"),
    "Summary": ("_count", "_sum"),
}
# Names in a PromQL expression: identifiers that are neither functions, keywords nor label names.
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_WORDS = frozenset(
    "by without on ignoring group_left group_right and or unless bool offset sum min max avg count "
    "stddev stdvar topk bottomk quantile count_values rate irate increase delta idelta deriv "
    "histogram_quantile time abs ceil floor round clamp_min clamp_max absent absent_over_time "
    "avg_over_time max_over_time min_over_time sum_over_time count_over_time changes resets "
    "label_replace label_join vector scalar sort sort_desc predict_linear".split()
)


def is_custom(obj: Obj) -> bool:
    return (obj.get("apiVersion"), obj.get("kind")) in CRD_KINDS


def validate_custom(root: Path, objs: list[Obj], where: str, report: Report) -> None:
    """Each custom object against its CRD schema (one Node run for all of them)."""
    if not objs:
        return
    try:
        done = subprocess.run(
            ["node", str(VALIDATOR)],
            cwd=VALIDATOR.parent,
            input=json.dumps(objs),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        report.error(where, "node not found: validating the KEDA and Prometheus objects needs Node 20+")
        return
    if done.returncode != 0:
        report.error(
            where,
            f"{VALIDATOR} failed: {done.stderr.strip()[:500]} (run `make k8s-check`, which installs it)",
        )
        return
    for problem in json.loads(done.stdout):
        report.error(where, f"{problem['name']}: {problem['error']} (CRD schema)")


def exported_metrics(root: Path) -> set[str]:
    """Every series name the services' code can export, from their metrics definitions."""
    names: set[str] = set()
    for path in [*root.glob("libs/*/rag_*/**/*.py"), *root.glob("services/*/rag_*/**/*.py")]:
        for kind, name in _DEFINED.findall(path.read_text(encoding="utf-8")):
            names.update(name + suffix for suffix in _SUFFIXES[kind])
    return names


def metrics_named(expr: str) -> set[str]:
    """The metric names of a PromQL expression (outside strings, label matchers and ranges)."""
    bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\b\d[\w.]*", " ", bare)  # numbers (1e3) and durations (5m)
    return {word for word in _IDENTIFIER.findall(bare) if word not in _PROMQL_WORDS and not word[0].isdigit()}


def check_custom_policies(root: Path, objs: list[Obj], where: str, report: Report) -> None:
    deployments = {o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"}
    hpa_targets = {
        (o.get("spec") or {}).get("scaleTargetRef", {}).get("name")
        for o in objs
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    for obj in objs:
        spec = obj.get("spec") or {}
        if obj["kind"] == "ScaledObject":
            target = (spec.get("scaleTargetRef") or {}).get("name")
            owner = object_name(obj)
            if target not in deployments:
                report.error(where, f"{owner}: scales {target!r}, which is not a rendered Deployment")
            if target in hpa_targets:
                report.error(
                    where, f"{owner}: {target} also has an HPA of its own; the two fight (delete it)"
                )
            if int(spec.get("minReplicaCount", 0)) < 1:
                report.error(
                    where, f"{owner}: minReplicaCount must be at least 1 (NOTIFY wakes running workers only)"
                )
            table = WORKER_QUEUES.get(str(target))
            queries = [
                t.get("metadata", {}).get("query", "")
                for t in spec.get("triggers") or []
                if t.get("type") == "postgresql"
            ]
            if (
                table is not None
                and queries
                and not all(re.search(rf"\bFROM\s+{table}\b", q) for q in queries)
            ):
                report.error(where, f"{owner}: its postgresql trigger must count {table}, {target}'s queue")
        if obj["kind"] == "PrometheusRule":
            known = exported_metrics(root) | {"up"}
            for group in spec.get("groups") or []:
                for rule in group.get("rules") or []:
                    unknown = metrics_named(str(rule.get("expr", ""))) - known
                    if unknown:
                        report.error(
                            where,
                            f"{object_name(obj)} {rule.get('alert') or rule.get('record')}: "
                            f"names metrics no service exports: {', '.join(sorted(unknown))}",
                        )
