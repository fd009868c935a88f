"""`$ref` resolution for the drift tests of docs/asyncapi.yaml and rag_api/openapi.yaml."""

from __future__ import annotations

from typing import Any


def resolve_ref(spec: dict[str, Any], node: Any) -> Any:
    """Follow local `$ref`s (`#/a/b`) in `spec` until a node that is not one."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node
