"""The api describes itself: `GET /openapi.json` and the interactive page `GET /docs`.

The description is the hand-kept `openapi.yaml` next to this module (package data, so the
image ships it); services/api/tests/test_openapi_drift.py keeps it true to the routes and
error codes of the code, and the contract fuzz run (tests/contract) to the live answers.
The page is Swagger UI from the `swagger-ui-bundle-v2` wheel, served by the api itself under
/docs/assets: an operator's browser fetches nothing from any other host (no CDN, and the
online validator badge is switched off).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from rag_api.resources import resource

OPENAPI_RESOURCE = "openapi.yaml"
ASSETS_PATH = "/docs/assets"

DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rag-engine API</title>
<link rel="icon" href="{ASSETS_PATH}/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

# A file, not an inline script, so that a Content-Security-Policy without 'unsafe-inline' holds.
# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  persistAuthorization: false
});
"""


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, parsed once per process."""
    text = files("rag_api").joinpath(OPENAPI_RESOURCE).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@cache
def _openapi_json() -> bytes:
    return orjson.dumps(openapi_document())


async def openapi_json(request: Request) -> Response:
    return Response(_openapi_json(), media_type="application/json")


async def docs_page(request: Request) -> Response:
    return Response(DOCS_PAGE, media_type="text/html")


async def docs_init(request: Request) -> Response:
    return Response(DOCS_INIT, media_type="text/javascript")


def docs_routes() -> list[BaseRoute]:
    """The description, the page, its script and the Swagger UI assets (no auth: nothing private)."""
    return [
        resource("/openapi.json", GET=openapi_json),
        resource("/docs", GET=docs_page),
        resource("/docs/init.js", GET=docs_init),
        Mount(ASSETS_PATH, app=StaticFiles(directory=Path(str(swagger_ui_path))), name="docs-assets"),
    ]
