"""WSGI middleware: requests per route and sampled memory per route (Flask, Django, any WSGI app).

``app.wsgi_app = OomguardWSGIMiddleware(app.wsgi_app)`` (Flask) or
``application = OomguardWSGIMiddleware(get_wsgi_application())`` (Django, where
:class:`oomguard.integrations.django.OomguardMiddleware` names the route).

The route template comes from the framework: ``environ["oomguard.route"]``,
set during the request by a framework hook (for a Flask app the middleware
registers a ``before_request`` hook that records the matched rule; the Django
middleware sets it too). The response iterable is
returned as it is (a server's ``wsgi.file_wrapper``/sendfile path is kept), so
a sampled request's memory is measured when the app returns its response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import oomguard

__all__ = ["ENDPOINT_KEY", "ERROR_KEY", "MARK", "ROUTE_KEY", "OomguardWSGIMiddleware", "route_of_environ"]

logger = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Any
WSGIApp = Callable[[Environ, Any], Iterable[bytes]]

#: Set in the environ of a counted request: a second wrapper passes it through.
MARK = "oomguard.counted"
#: A framework hook puts the route template here (the Django middleware does).
ROUTE_KEY = "oomguard.route"
#: ... and the endpoint (a view function, or Flask's endpoint name) here.
ENDPOINT_KEY = "oomguard.endpoint"
#: ... and True here when the handler raised (and the framework answered 500 itself).
ERROR_KEY = "oomguard.error"


def route_of_environ(environ: Environ) -> tuple[str, object]:
    """(route template, endpoint) of a handled request; Flask's endpoint is the view's name."""
    route = environ.get(ROUTE_KEY)
    if isinstance(route, str):
        return route, environ.get(ENDPOINT_KEY)
    return oomguard.UNMATCHED_ROUTE, None


def _flask_hook(app: Any) -> bool:
    """Record Flask's matched rule in the environ (a ``before_request`` hook, once per app)."""
    if getattr(app, "_oomguard_hooked", False):
        return True
    try:
        from flask import request
    except ImportError:
        return False

    def record_route() -> None:
        rule = request.url_rule
        if rule is not None:
            environ = request.environ
            environ[ROUTE_KEY] = rule.rule
            environ[ENDPOINT_KEY] = rule.endpoint

    def record_error(sender: object, **extra: object) -> None:
        request.environ[ERROR_KEY] = True

    try:
        app.before_request_funcs.setdefault(None, []).insert(0, record_route)
        from flask import got_request_exception

        got_request_exception.connect(record_error, app, weak=False)
    except Exception:
        logger.warning("oomguard: cannot hook into the Flask app; its requests count as %s", oomguard.UNMATCHED_ROUTE)
        return False
    app._oomguard_hooked = True
    return True


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
        if self._views is views and hasattr(owner, "before_request_funcs"):
            _flask_hook(owner)

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
            error = error or bool(environ.get(ERROR_KEY))
            delta = self.traffic.end(probe, route, endpoint=endpoint, error=error)
            if delta is not None:
                oomguard.annotate_span(route, delta)
        except Exception:  # the agent's own failure never reaches the request
            logger.exception("oomguard: request accounting failed")
