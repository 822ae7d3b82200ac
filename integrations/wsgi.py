"""WSGI middleware: requests per route and sampled memory per route (Flask, Django, any WSGI app).

``app.wsgi_app = OomguardWSGIMiddleware(app.wsgi_app)`` (Flask) or
``application = OomguardWSGIMiddleware(get_wsgi_application())`` (Django, where
:class:`oomguard.integrations.django.OomguardMiddleware` names the route).

The route template comes from the framework once the app has handled the
request: Flask's matched rule (werkzeug keeps its request in the environ), or
``environ["oomguard.route"]`` set by a framework hook. The response iterable is
returned as it is (a server's ``wsgi.file_wrapper``/sendfile path is kept), so
a sampled request's memory is measured when the app returns its response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import oomguard

__all__ = ["MARK", "ROUTE_KEY", "OomguardWSGIMiddleware", "route_of_environ"]

logger = logging.getLogger(__name__)

Environ = MutableMapping[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: Set in the environ of a counted request: a second wrapper passes it through.
MARK = "oomguard.counted"
#: A framework hook puts the route template here (the Django middleware does).
ROUTE_KEY = "oomguard.route"


def route_of_environ(environ: Environ) -> tuple[str, object]:
    """(route template, endpoint) of a handled request; Flask's endpoint is the view's name."""
    route = environ.get(ROUTE_KEY)
    if isinstance(route, str):
        return route, environ.get("oomguard.endpoint")
    request = environ.get("werkzeug.request")  # Flask: the rule the URL map matched
    rule = getattr(request, "url_rule", None)
    template = getattr(rule, "rule", None)
    if isinstance(template, str):
        return template, getattr(rule, "endpoint", None)
    return oomguard.UNMATCHED_ROUTE, None


class OomguardWSGIMiddleware:
    """Counts WSGI requests per route template for oomguard's traffic signal.

    Args:
        app: the WSGI application.
        traffic: where to count (default: the process-wide :func:`oomguard.get_traffic`).
        route: maps a handled request's environ to ``(route template, endpoint)``.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        traffic: oomguard.Traffic | None = None,
        route: Callable[[Environ], tuple[str, object]] = route_of_environ,
    ) -> None:
        self.app = app
        self.traffic = traffic if traffic is not None else oomguard.get_traffic()
        self.route = route
        # Flask names views by endpoint; the app (or the app of a bound ``wsgi_app``) maps them.
        owner = getattr(app, "__self__", app)
        views = getattr(owner, "view_functions", None)
        self._views: dict[str, object] = views if isinstance(views, dict) else {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if MARK in environ:
            return self.app(environ, start_response)
        environ[MARK] = True
        probe = self.traffic.begin()
        error = True
        try:
            response = self.app(environ, start_response)
            error = False
            return response
        finally:
            self._end(environ, probe, error)

    def _end(self, environ: Environ, probe: int | None, error: bool) -> None:
        try:
            route, endpoint = self.route(environ)
            if isinstance(endpoint, str) and not self.traffic.knows(route):
                endpoint = self._views.get(endpoint)
            delta = self.traffic.end(probe, route, endpoint=endpoint, error=error)
            if delta is not None:
                oomguard.annotate_span(route, delta)
        except Exception:  # the agent's own failure never reaches the request
            logger.exception("oomguard: request accounting failed")
