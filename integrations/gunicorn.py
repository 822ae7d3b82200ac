"""gunicorn server hooks: ``gunicorn -c python:oomguard.integrations.gunicorn app:app``.

Or import them into your own config file (``from oomguard.integrations.gunicorn
import on_starting, post_worker_init``). ``oomguard run -- gunicorn …`` needs
none of this: the bootstrap does the same.

The agent starts in the master; each forked worker restarts its own sampler
(fork-safe), with or without ``--preload``. Workers coordinate through the dump
volume so one cgroup-level episode writes one bundle, from the worker that grew.
"""

from __future__ import annotations

import logging
from typing import Any

import oomguard

from .autowrap import wrap_app

__all__ = ["on_starting", "post_worker_init"]

logger = logging.getLogger(__name__)


def on_starting(server: Any) -> None:
    """Master hook: start the agent from ``OOMGUARD_*`` (never raises into gunicorn)."""
    try:
        oomguard.start()
    except oomguard.ConfigError as exc:
        logger.error("oomguard is off: %s", exc)
    except Exception:
        logger.exception("oomguard is off: it failed to start")


def post_worker_init(worker: Any) -> None:
    """Worker hook: count the worker's requests per route (WSGI or ASGI worker)."""
    if oomguard.get_agent() is None:
        on_starting(None)
    try:
        worker.wsgi = wrap_app(worker.wsgi)
    except Exception:
        logger.exception("oomguard: could not wrap the gunicorn app; it runs without traffic counts")
