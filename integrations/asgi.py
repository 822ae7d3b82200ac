"""ASGI middleware: requests per route and sampled memory per route (Starlette, FastAPI, any ASGI app).

``app = OomguardMiddleware(app)`` or ``app.add_middleware(OomguardMiddleware)``.
It never touches ``receive``, ``send`` or the response: the app's messages,
streaming bodies and exceptions pass through as they are. Lifespan and
websocket scopes go straight to the app.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import oomguard

__all__ = ["MARK", "OomguardMiddleware", "route_of_scope"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Set in the scope of a counted request, so a second wrapper (``oomguard run`` plus
#: an explicit middleware) passes it through instead of counting it twice.
MARK = "oomguard.counted"


def route_of_scope(scope: Scope) -> str:
    """The route template the router matched.

    Starlette sets ``scope["route"]``, FastAPI does for its own routes; for a
    plain route FastAPI only sets ``scope["endpoint"]``, whose route is looked
    up once in ``scope["router"]``. A route inside a ``Mount`` is prefixed with
    the path the mount matched.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if hasattr(route, "routes"):  # a Mount whose own routes did not match: a 404 inside it
        return oomguard.UNMATCHED_ROUTE
    if not isinstance(path, str):
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return oomguard.UNMATCHED_ROUTE
        try:
            path = _ENDPOINT_PATHS.get(endpoint, _MISSING)
        except TypeError:  # an unhashable endpoint object
            return oomguard.UNMATCHED_ROUTE
        if path is _MISSING:
            path = _endpoint_path(scope.get("router"), endpoint)
            if len(_ENDPOINT_PATHS) < _MAX_ENDPOINTS:
                _ENDPOINT_PATHS[endpoint] = path
        if not isinstance(path, str):
            return oomguard.UNMATCHED_ROUTE
    if "app_root_path" not in scope:  # no Mount matched: root_path is the proxy's, not a route's
        return path
    prefix: str = scope.get("root_path", "")[len(scope["app_root_path"]) :]
    return prefix + path


_MISSING = object()
_MAX_ENDPOINTS = 1024
_ENDPOINT_PATHS: dict[Any, object] = {}


def _endpoint_path(router: object, endpoint: object) -> str | None:
    for route in getattr(router, "routes", ()):
        if getattr(route, "endpoint", None) is endpoint:
            path = getattr(route, "path", None)
            return path if isinstance(path, str) else None
    return None


class OomguardMiddleware:
    """Counts HTTP requests per route template for oomguard's traffic signal.

    Args:
        app: the ASGI application.
        traffic: where to count (default: the process-wide :func:`oomguard.get_traffic`).
        route: maps a finished request's scope to its route template.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        traffic: oomguard.Traffic | None = None,
        route: Callable[[Scope], str] = route_of_scope,
    ) -> None:
        self.app = app
        self.traffic = traffic if traffic is not None else oomguard.get_traffic()
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or MARK in scope:
            await self.app(scope, receive, send)
            return
        scope[MARK] = True
        probe = self.traffic.begin()
        error = True
        try:
            await self.app(scope, receive, send)
            error = False
        finally:
            self._end(scope, probe, error)

    def _end(self, scope: Scope, probe: int | None, error: bool) -> None:
        try:
            route = self.route(scope)
            delta = self.traffic.end(probe, route, endpoint=scope.get("endpoint"), error=error)
            if delta is not None:
                oomguard.annotate_span(route, delta)
        except Exception:  # the agent's own failure never reaches the request
            logger.exception("oomguard: request accounting failed")
