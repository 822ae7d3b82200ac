"""Wrap a server's app without changing its code (``oomguard run``).

:func:`install` patches, once they are imported, the two places where a
server gets hold of the application: gunicorn's ``Worker.load_wsgi`` and
uvicorn's ``Config.load``. Each wraps the loaded app in the ASGI or WSGI
middleware; a request already counted by an explicit middleware is not counted
twice (the scope or environ carries a mark).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from .asgi import OomguardMiddleware
from .wsgi import OomguardWSGIMiddleware

__all__ = ["install", "is_asgi", "wrap_app"]

logger = logging.getLogger(__name__)

_WRAPPED = "_oomguard_wrapped"


def is_asgi(app: object) -> bool:
    """ASGI 3 apps are coroutine functions or objects with an async ``__call__`` (uvicorn's test)."""
    if inspect.isclass(app):
        return False
    call = getattr(app, "__call__", None)  # noqa: B004  (the method itself is what is inspected)
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)


def wrap_app(app: Any) -> Any:
    """The app inside the matching oomguard middleware (once)."""
    if getattr(app, _WRAPPED, False) or isinstance(app, (OomguardMiddleware, OomguardWSGIMiddleware)):
        return app
    wrapped: Any = OomguardMiddleware(app) if is_asgi(app) else OomguardWSGIMiddleware(app)
    setattr(wrapped, _WRAPPED, True)
    return wrapped


def _patch_gunicorn(module: ModuleType) -> None:
    worker = getattr(module, "Worker", None)
    original = getattr(worker, "load_wsgi", None)
    if worker is None or original is None or getattr(original, _WRAPPED, False):
        return

    def load_wsgi(self: Any) -> None:
        original(self)
        # uvicorn's gunicorn worker hands the app to uvicorn's Config, which is patched itself.
        if type(self).__module__.startswith("uvicorn"):
            return
        try:
            self.wsgi = wrap_app(self.wsgi)
        except Exception:
            logger.exception("oomguard: could not wrap the gunicorn app; it runs without traffic counts")

    setattr(load_wsgi, _WRAPPED, True)
    worker.load_wsgi = load_wsgi


def _patch_uvicorn(module: ModuleType) -> None:
    config = getattr(module, "Config", None)
    original = getattr(config, "load", None)
    if config is None or original is None or getattr(original, _WRAPPED, False):
        return

    def load(self: Any) -> None:
        original(self)
        try:
            self.loaded_app = wrap_app(self.loaded_app)
        except Exception:
            logger.exception("oomguard: could not wrap the uvicorn app; it runs without traffic counts")

    setattr(load, _WRAPPED, True)
    config.load = load


_PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "gunicorn.workers.base": _patch_gunicorn,
    "uvicorn.config": _patch_uvicorn,
}


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, patch: Callable[[ModuleType], None]) -> None:
        self._inner = inner
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        try:
            self._patch(module)
        except Exception:
            logger.exception("oomguard: could not instrument %s", module.__name__)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches the target modules right after they are executed."""

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = _PATCHES.get(fullname)
        if patch is None or getattr(self._busy, "active", False):
            return None
        self._busy.active = True
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        finally:
            self._busy.active = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, patch)
        return spec


_installed = False


def install() -> None:
    """Patch gunicorn and uvicorn as they are imported (or now, if they already are)."""
    global _installed
    if _installed:
        return
    _installed = True
    for name, patch in _PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
    sys.meta_path.insert(0, _Finder())
