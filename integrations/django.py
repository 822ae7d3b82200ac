"""Django: a middleware class that counts requests per URL pattern.

Add ``"oomguard.integrations.django.OomguardMiddleware"`` near the top of
``MIDDLEWARE``. It works under WSGI and ASGI servers, and beside the WSGI
wrapper (``oomguard run`` adds one to gunicorn apps): then the wrapper counts
and this class only names the route.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

import oomguard

from .wsgi import ENDPOINT_KEY, ERROR_KEY, MARK, ROUTE_KEY

__all__ = ["OomguardMiddleware", "route_of_request"]

logger = logging.getLogger(__name__)


def route_of_request(request: Any) -> tuple[str, object]:
    """(URL pattern, view) of a resolved request: ``/items/<int:pk>/``."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not isinstance(route, str):
        return oomguard.UNMATCHED_ROUTE, None
    return "/" + route.lstrip("^"), getattr(match, "func", None)


class OomguardMiddleware:
    """Django middleware (sync and async) feeding oomguard's per-route traffic."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.traffic = oomguard.get_traffic()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        meta = request.META
        if MARK in meta:  # an outer WSGI wrapper counts: just tell it the route
            response = self.get_response(request)
            self._name(request)
            return response
        meta[MARK] = True
        probe = self.traffic.begin()
        try:
            return self.get_response(request)
        finally:
            self._end(request, probe)

    async def _acall(self, request: Any) -> Any:
        meta = request.META
        if MARK in meta:
            response = await self._await(request)
            self._name(request)
            return response
        meta[MARK] = True
        probe = self.traffic.begin()
        try:
            return await self._await(request)
        finally:
            self._end(request, probe)

    def _await(self, request: Any) -> Awaitable[Any]:
        result: Awaitable[Any] = self.get_response(request)
        return result

    def process_exception(self, request: Any, exception: BaseException) -> None:
        """Django calls this when a view raises; the exception goes on to Django's handler."""
        request.META[ERROR_KEY] = True

    def _name(self, request: Any) -> None:
        try:
            route, endpoint = route_of_request(request)
            request.META[ROUTE_KEY] = route
            request.META[ENDPOINT_KEY] = endpoint
        except Exception:
            logger.exception("oomguard: naming the route failed")

    def _end(self, request: Any, probe: int | None) -> None:
        try:
            route, endpoint = route_of_request(request)
            error = bool(request.META.get(ERROR_KEY))
            delta = self.traffic.end(probe, route, endpoint=endpoint, error=error)
            if delta is not None:
                oomguard.annotate_span(route, delta)
        except Exception:  # the agent's own failure never reaches the request
            logger.exception("oomguard: request accounting failed")
