"""Starlette and FastAPI: the ASGI middleware, added the framework's way.

``app.add_middleware(OomguardMiddleware)`` or ``instrument(app)``.
"""

from __future__ import annotations

from typing import Any

from .asgi import OomguardMiddleware, route_of_scope

__all__ = ["OomguardMiddleware", "instrument", "route_of_scope"]


def instrument(app: Any) -> Any:
    """Add :class:`OomguardMiddleware` to a Starlette or FastAPI app (outermost); returns the app."""
    app.add_middleware(OomguardMiddleware)
    return app
