"""oomguard: an in-process memory agent for containerised Python services.

Importing this package starts nothing. ``import oomguard.auto`` or
:func:`start` does.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from .agent import Agent
from .config import Config, parse_bytes
from .errors import CgroupUnavailable, ConfigError, DumpInProgress, DumpVolumeError, OomguardError
from .sample import Sample
from .traffic import (
    OTHER_ROUTE,
    UNMATCHED_ROUTE,
    RouteStats,
    Traffic,
    TrafficSnapshot,
    annotate_span,
    get_traffic,
)

__all__ = [
    "OTHER_ROUTE",
    "UNMATCHED_ROUTE",
    "Agent",
    "CgroupUnavailable",
    "Config",
    "ConfigError",
    "DumpInProgress",
    "DumpVolumeError",
    "OomguardError",
    "RouteStats",
    "Sample",
    "Traffic",
    "TrafficSnapshot",
    "__version__",
    "annotate_span",
    "dump",
    "get_agent",
    "get_traffic",
    "start",
    "stop",
]

__version__ = "0.1.0"

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_agent: Agent | None = None


def _apply(config: Config, overrides: dict[str, object]) -> Config:
    changes: dict[str, object] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "dump_dir":
            value = Path(str(value))
        elif key == "admin_addr" and isinstance(value, str):
            value = Config.from_env({"OOMGUARD_ADMIN_ADDR": value}).admin_addr
        elif key == "max_dump_bytes" and isinstance(value, str):
            value = parse_bytes(value)
        changes[key] = value
    return config.replace(**changes) if changes else config


def start(config: Config | None = None, **overrides: object) -> Agent | None:
    """Start the agent in this process (a second call returns the running one).

    Args:
        config: a full configuration; default: ``Config.from_env(os.environ)``.
        **overrides: fields of :class:`Config` to change, e.g. ``dump_dir="/dumps"``.

    Returns:
        The running agent, or None when ``OOMGUARD_ENABLED=0``.

    Raises:
        ConfigError: a setting is invalid; the message names it and its value.
    """
    global _agent
    with _lock:
        if _agent is not None and _agent.pid == os.getpid():
            return _agent
        base = config if config is not None else Config.from_env(os.environ)
        try:
            config = _apply(base, overrides)
        except TypeError as exc:
            raise ConfigError(f"oomguard.start(): {exc}") from None
        logging.getLogger("oomguard").setLevel(config.log_level)
        if not config.enabled:
            return None
        agent = Agent(config)
        try:
            agent.start()
        except Exception:  # never raise into the host application for a runtime failure
            logger.exception("oomguard: failed to start; the application runs on without it")
            return None
        _agent = agent
        return agent


def dump(kind: str = "full", *, seconds: float | None = None) -> Path:
    """Write a bundle now and return its folder.

    Args:
        kind: ``heap``, ``memray`` or ``full``.
        seconds: length of the memray capture for ``memray``/``full`` when none is armed.

    Raises:
        OomguardError: the agent is not running.
        DumpInProgress: another bundle is being written.
        DumpVolumeError: the dump volume cannot take it.
    """
    agent = _agent
    if agent is None or agent.pid != os.getpid():
        raise OomguardError("oomguard is not running: call oomguard.start() or import oomguard.auto first")
    return agent.dump(kind, seconds=seconds)


def get_agent() -> Agent | None:
    """The running agent, or None."""
    return _agent


def stop() -> None:
    """Stop the running agent (no-op when none runs)."""
    global _agent
    with _lock:
        agent, _agent = _agent, None
    if agent is not None:
        agent.stop()
