"""One route per path, whatever its methods, so that a 405 tells the truth in `Allow`.

Starlette gives each `Route(path, endpoint, methods=[...])` its own method check: a path served
by two routes (GET and POST /api/workspaces) answered another method with the `Allow` of
whichever route came first, and, since the console's static mount at "/" matches every path
in full, with the static files' `Allow: GET, HEAD` for every api path (found by the contract
fuzz run, tests/contract). A `ResourceRoute` matches its path for every method and answers an
unknown one itself: 405 `method_not_allowed` with exactly the methods the path has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from rag_api.errors import error_response

Endpoint = Callable[[Request], Awaitable[Response]]


class ResourceRoute(Route):
    """A route that matches its path in full for every method.

    Its `methods` stay those it serves (HEAD with GET): Starlette's own `handle` then answers
    any other method 405 with `Allow` listing them, and the router never passes the request on
    to a later route (the static mount) for lack of a full match.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        return (Match.FULL if match is Match.PARTIAL else match), child_scope


def resource(path: str, **endpoints: Endpoint) -> ResourceRoute:
    """`resource("/api/workspaces", GET=list_workspaces, POST=create_workspace)`."""
    by_method = {method.upper(): endpoint for method, endpoint in endpoints.items()}
    if "GET" in by_method:
        by_method["HEAD"] = by_method["GET"]

    async def dispatch(request: Request) -> Response:
        return await by_method[request.method](request)

    dispatch.__name__ = dispatch.__qualname__ = "_".join(e.__name__ for e in endpoints.values())
    return ResourceRoute(path, dispatch, methods=list(by_method))


class _NoRoute:
    """Answers 404 `not_found` for every method (an ASGI app: Starlette then matches it for all)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(404, "not_found", "No route matches this path.")(scope, receive, send)


def no_route_under(prefix: str) -> Route:
    """404 for every other path under `prefix`, whatever the method.

    Without it such a request reached the console's static mount, which answers any method but
    GET with 405: `POST /api/documents/not-a-uuid/reprocess` said 405 where a path id that is
    not a UUID is a 404 (docs/api.md; found by the contract fuzz run's stateful phase).
    """
    return Route(f"{prefix}/{{rest:path}}", _NoRoute())
