"""What ``oomguard run``'s ``sitecustomize`` does in every Python process it reaches.

``oomguard run -- CMD…`` puts a folder holding only ``sitecustomize.py`` first
on ``PYTHONPATH`` and execs CMD. In each Python process that starts with it:

* the first one (the server: gunicorn's master, uvicorn) becomes the *root*:
  it starts the agent and patches gunicorn/uvicorn so the app they load is
  wrapped in the traffic middleware. gunicorn's forked workers inherit both
  (the agent is fork-safe);
* a worker the root spawns through ``multiprocessing`` (``uvicorn --workers``,
  ``--reload``) does the same;
* any other Python descendant (a script the app runs) starts nothing, unless
  ``oomguard run --children`` asked for it, and drops the bootstrap from its own
  ``PYTHONPATH`` so its descendants do not even import it.

Either way the user's own ``sitecustomize`` (the next one on ``sys.path``) then
runs as it would have. Configuration still comes from ``OOMGUARD_*`` through
:class:`oomguard.Config`; the ``OOMGUARD_RUN_*`` variables here are the
wrapper's own plumbing. Nothing here ever raises into the interpreter.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

__all__ = ["BOOTSTRAP_DIR", "CHILDREN_ENV", "DIR_ENV", "ROOT_ENV", "bootstrap", "participates", "strip_path"]

logger = logging.getLogger(__name__)

#: The folder ``oomguard run`` puts on PYTHONPATH.
BOOTSTRAP_DIR = Path(__file__).resolve().parent / "_bootstrap"
DIR_ENV = "OOMGUARD_RUN_BOOTSTRAP"
"""The bootstrap folder, as the wrapper put it on PYTHONPATH."""
ROOT_ENV = "OOMGUARD_RUN_ROOT"
"""Pid of the first Python process of the command (set by that process)."""
CHILDREN_ENV = "OOMGUARD_RUN_CHILDREN"
"""``1``: every Python descendant runs an agent (``oomguard run --children``)."""


def participates(environ: MutableMapping[str, str], argv: Sequence[str], pid: int, ppid: int) -> bool:
    """Whether this process starts an agent; marks the root in ``environ``."""
    root = environ.get(ROOT_ENV, "")
    if not root.isdigit():
        environ[ROOT_ENV] = str(pid)
        return True
    if environ.get(CHILDREN_ENV) == "1" or int(root) == pid:
        return True
    # uvicorn --workers/--reload spawn their servers through multiprocessing.
    return "--multiprocessing-fork" in argv and int(root) == ppid


def strip_path(value: str, folder: str) -> str:
    """``PYTHONPATH`` without ``folder``."""
    return os.pathsep.join(p for p in value.split(os.pathsep) if p and os.path.normpath(p) != folder)


def _start() -> None:
    import oomguard
    from oomguard.integrations import autowrap

    try:
        oomguard.start()
    except oomguard.ConfigError as exc:
        logger.error("oomguard is off: %s", exc)
        return
    autowrap.install()


def _chain(folder: str) -> None:
    """Run the user's own sitecustomize (the next one on sys.path), as site would have."""
    path = [p for p in sys.path if os.path.normpath(p or ".") != folder]
    sys.path[:] = path
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)  # its errors are site's to report, as without oomguard


def bootstrap(environ: MutableMapping[str, str] | None = None, argv: Sequence[str] | None = None) -> None:
    """Called by the bootstrap ``sitecustomize`` at interpreter start."""
    env = os.environ if environ is None else environ
    folder = os.path.normpath(env.get(DIR_ENV) or str(BOOTSTRAP_DIR))
    try:
        if participates(env, sys.argv if argv is None else argv, os.getpid(), os.getppid()):
            _start()
        elif env.get("PYTHONPATH"):
            remaining = strip_path(env["PYTHONPATH"], folder)
            if remaining:
                env["PYTHONPATH"] = remaining
            else:
                del env["PYTHONPATH"]
    except Exception:
        logger.exception("oomguard: the run bootstrap failed; the program runs without the agent")
    _chain(folder)
