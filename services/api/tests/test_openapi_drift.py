"""rag_api/openapi.yaml describes exactly the routes the app mounts and the error codes it returns.

The contract fuzz run (tests/contract) checks the document against a live api; this checks it
against the code, in both directions, with every side read from the code rather than a list
kept here: the routes are `rag_api.app.routes()` (path with its converters dropped, and each
method but HEAD), the error codes every literal `(status, "code")` pair passed to a call in
the package (`ApiError`, `error_response`, `Refusal`, `_refuse`), the codes of Starlette's
own 404/405 (`app._HTTP_CODES`) and the bodies the middleware answers with. Each
error response of the document names its codes in `x-error-codes` on its media type.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route, WebSocketRoute

import rag_api
from rag_api import app as app_module
from rag_api.api_docs import ASSETS_PATH, openapi_document
from rag_core.formats import MIME_TYPES

from .spec_refs import resolve_ref

PACKAGE = Path(rag_api.__file__).parent
SPEC = openapi_document()
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
# Static files, not operations: the console page and Swagger UI's assets.
STATIC_MOUNTS = {"", ASSETS_PATH}
ERROR_CALLS = {"ApiError", "error_response", "Refusal", "_refuse"}
CODE = re.compile(r"[a-z][a-z_]*")


def resolve(node: Any) -> Any:
    return resolve_ref(SPEC, node)


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def mounted() -> set[tuple[str, str]]:
    found = set()
    for route in app_module.routes():
        if isinstance(route, Route):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found |= {(path, m.lower()) for m in route.methods or () if m != "HEAD"}
    return found


def error_codes_of(response: dict[str, Any]) -> set[str]:
    return {code for media in response.get("content", {}).values() for code in media.get("x-error-codes", [])}


def described_errors() -> set[tuple[int, str]]:
    """(status, code) of every error response: those of the operations and the shared ones."""
    responses = [(status, resolve(r)) for _, _, op in operations() for status, r in op["responses"].items()]
    for name, response in SPEC["components"]["responses"].items():
        # A shared response names its status nowhere but where it is used; MethodNotAllowed is
        # used by no operation (any path answers it), so its status is read from its name here.
        uses = {
            s
            for _, _, op in operations()
            for s, r in op["responses"].items()
            if r.get("$ref", "").endswith(f"/{name}")
        }
        responses += [(status, response) for status in uses or {"405"}]
    return {(int(status), code) for status, response in responses for code in error_codes_of(response)}


def _literal_pair(args: list[ast.expr]) -> tuple[int, str] | None:
    for status, code in itertools.pairwise(args):
        if (
            isinstance(status, ast.Constant)
            and isinstance(status.value, int)
            and 400 <= status.value <= 599
            and isinstance(code, ast.Constant)
            and isinstance(code.value, str)
        ):
            return status.value, code.value
    return None


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _forwards(args: list[ast.expr]) -> bool:
    """`error_response(exc.status, exc.code, ...)`, `Refusal(name, status, code, ...)`: passing on a
    status and code that were themselves built from literals elsewhere."""
    return any(isinstance(a, ast.Attribute) and a.attr in {"status", "status_code"} for a in args) or any(
        isinstance(a, ast.Name) and a.id == "status" for a in args
    )


def code_errors() -> set[tuple[int, str]]:
    """Every (status, code) the package can answer with, read from its source."""
    pairs: set[tuple[int, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bodies: dict[str, str] = {}  # a function returning a body with a literal "code" -> that code
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Dict):
                        for key, value in zip(inner.keys, inner.values, strict=True):
                            if (
                                isinstance(key, ast.Constant)
                                and key.value == "code"
                                and isinstance(value, ast.Constant)
                            ):
                                bodies[node.name] = value.value
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            pair = _literal_pair(node.args)
            if pair is not None:
                pairs.add(pair)
            elif _name(node.func) in ERROR_CALLS:
                assert _forwards(node.args), (
                    f"{path.name}:{node.lineno}: an error's status and code must be literals to be described"
                )
            # The middleware's answer(408, request_timeout_body(...)).
            if (
                len(node.args) == 2
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[1], ast.Call)
                and _name(node.args[1].func) in bodies
            ):
                pairs.add((node.args[0].value, bodies[_name(node.args[1].func)]))
    pairs |= {(status, code) for status, (code, _) in app_module._HTTP_CODES.items()}
    return pairs


def test_the_document_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    validate(SPEC)


def test_every_mounted_route_is_described_and_every_described_operation_is_mounted() -> None:
    described = {(path, method) for path, method, _ in operations()}
    assert mounted() - described == set(), "routes the app mounts that the document lacks"
    assert described - mounted() == set(), "operations the document describes that the app lacks"


def test_the_other_routes_are_the_realtime_socket_and_static_files() -> None:
    """The WebSocket is AsyncAPI's (docs/asyncapi.yaml): the document only says it exists."""
    for route in app_module.routes():
        if isinstance(route, WebSocketRoute):
            assert f"`GET {route.path}`" in SPEC["info"]["description"]
        elif isinstance(route, Mount):
            assert route.path in STATIC_MOUNTS
        else:
            assert isinstance(route, Route)
            if route.methods is None:  # the catch-all 404 under /api (rag_api.resources.no_route_under)
                assert route.path == "/api/{rest:path}"


def test_every_error_code_the_code_returns_is_described_with_its_status() -> None:
    found = code_errors()
    assert len(found) >= 25, found  # the scan reads the package (a broken scan finds nothing)
    assert found - described_errors() == set(), "error codes the code returns that the document lacks"


def test_every_described_error_code_is_one_the_code_returns() -> None:
    assert described_errors() - code_errors() == set(), "described error codes the code never returns"


@pytest.mark.parametrize(("path", "method"), sorted((p, m) for p, m, _ in operations()))
def test_every_error_response_names_its_codes(path: str, method: str) -> None:
    operation = SPEC["paths"][path][method]
    assert operation.get("operationId")
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")) and path != "/readyz":
            codes = error_codes_of(resolve(response))
            assert codes and all(CODE.fullmatch(c) for c in codes), (path, method, status)


def test_every_api_route_requires_the_bearer_token_and_the_public_ones_do_not() -> None:
    assert SPEC["security"] == [{"bearer": []}]
    for path, _, operation in operations():
        public = operation.get("security") == []
        assert public == (not path.startswith("/api/")), path
        if not public:
            assert "401" in operation["responses"], path


def test_a_documents_content_type_is_one_of_the_formats_the_api_stores() -> None:
    """rag_core.formats.MIME_TYPES is what intake stores; the schema must list exactly those."""
    described = resolve(SPEC["components"]["schemas"]["Document"])["properties"]["content_type"]["enum"]
    assert set(described) == set(MIME_TYPES.values())
