"""The running agent: owns the config, the sample source, the timeline and the sampler."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path

from .config import Config
from .sample import Sample, SampleSource
from .sampler import Sampler
from .timeline import Timeline

__all__ = ["Agent"]

logger = logging.getLogger(__name__)

_agents: weakref.WeakSet[Agent] = weakref.WeakSet()
_fork_hook_lock = threading.Lock()
_fork_hook_installed = False


def _after_fork_in_child() -> None:
    for agent in list(_agents):
        agent._after_fork()


def _install_fork_hook() -> None:
    global _fork_hook_installed
    with _fork_hook_lock:
        if not _fork_hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook_installed = True


class Agent:
    """One oomguard agent inside one process.

    Args:
        config: the configuration.
        source: where samples come from (injectable for tests); defaults to this
            process and its memory cgroup.
    """

    def __init__(self, config: Config, *, source: SampleSource | None = None, root: Path = Path("/")) -> None:
        self.config = config
        self.source = source if source is not None else SampleSource(root)
        self.timeline = Timeline(config.timeline_size)
        self.sampler = Sampler(self.source, self.timeline, config.interval)
        self.pid = os.getpid()

    @property
    def running(self) -> bool:
        """True while the sampler thread is alive."""
        return self.sampler.running

    def start(self) -> None:
        """Start sampling; harmless when already running."""
        _install_fork_hook()
        _agents.add(self)
        if self.source.cgroup_reader is None:
            logger.warning("oomguard: %s; host memory is used as the limit", self.source.unavailable_reason)
        self.sampler.start()

    def stop(self) -> None:
        """Stop sampling and join the thread."""
        _agents.discard(self)
        self.sampler.stop()

    def sample_now(self) -> Sample | None:
        """Take a sample immediately (also appended to the timeline)."""
        return self.sampler.sample_once()

    def _after_fork(self) -> None:
        # Runs in the child right after fork(): only the forking thread exists.
        self.pid = os.getpid()
        self.timeline.after_fork()
        self.sampler.after_fork()
