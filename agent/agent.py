"""The running agent: owns the config, the sample source, the timeline and the sampler."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config
from .diagnosis import Verdict, verdict_document
from .diagnostician import Diagnostician
from .guardian import Guardian
from .heap.windows import HeapWindows
from .sample import Sample, SampleSource
from .sampler import Sampler
from .timeline import Timeline
from .traffic import requests_total
from .volume import writable_layer_warning

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
        self.source = source if source is not None else SampleSource(root, requests=requests_total)
        self.timeline = Timeline(config.timeline_size)
        self.sampler = Sampler(self.source, self.timeline, config.interval)
        self.diagnosis = Diagnostician(
            self.timeline, windows=HeapWindows(budget=self._heap_budget), quiet=lambda: self.guardian.armed
        )
        self.guardian = Guardian(
            config,
            self.timeline,
            self.sampler,
            self.source,
            verdict=lambda: verdict_document(self.verdict()),
            before_capture=self.diagnosis.quiet_heap,
        )
        self.sampler.on_sample.append(self.guardian.on_sample)
        self.sampler.on_sample.append(self.diagnosis.on_sample)
        self.diagnosis.subscribe(lambda _verdict: self.guardian.refresh_armed_note())
        self.pid = os.getpid()
        self._previous_handler: Any = None
        self._signal_installed = False
        self._atexit_registered = False

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
        self.guardian.check_volume()
        warning = writable_layer_warning(self.config.dump_dir)
        if warning:
            logger.warning("oomguard: %s", warning)
        self._install_signal()
        if not self._atexit_registered:
            atexit.register(self.stop)  # a normal exit removes an armed capture (only a kill leaves one)
            self._atexit_registered = True
        self.sampler.start()

    def stop(self) -> None:
        """Stop sampling, join the thread, stop an armed capture, restore the signal handler."""
        _agents.discard(self)
        self.sampler.stop()
        self.diagnosis.close()
        self.guardian.close()
        self._restore_signal()

    def dump(self, kind: str = "full", *, seconds: float | None = None) -> Path:
        """Write a bundle now (see :meth:`Guardian.dump`); returns its folder."""
        return self.guardian.dump(kind, trigger="manual", seconds=seconds)

    def _install_signal(self) -> None:
        sig = self.config.dump_signal
        if sig is None or threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(sig)
        if current not in (signal.SIG_DFL, None):
            logger.warning("oomguard: %s already has a handler; `kill -%s` will not write bundles", sig.name, sig.name)
            return
        self._previous_handler = current
        signal.signal(sig, self._on_signal)
        self._signal_installed = True

    def _on_signal(self, signum: int, frame: object) -> None:
        # Signal handlers must stay tiny: queue the request, the sampler starts the dump.
        self.guardian.request_dump("signal", "full")

    def _restore_signal(self) -> None:
        sig = self.config.dump_signal
        if self._signal_installed and sig is not None and threading.current_thread() is threading.main_thread():
            signal.signal(sig, self._previous_handler or signal.SIG_DFL)
            self._signal_installed = False

    def verdict(self) -> Verdict:
        """The current diagnosis (SPEC §7): kind, confidence, summary, evidence, suspects."""
        return self.diagnosis.verdict()

    def on_verdict(self, callback: Callable[[Verdict], None]) -> None:
        """Call ``callback(verdict)`` (on the sampler thread) whenever the verdict's kind or top suspect changes."""
        self.diagnosis.subscribe(callback)

    def _heap_budget(self) -> int | None:
        # A heap window's snapshot must fit the same budget as a bundle's collectors.
        sample = self.timeline.latest()
        return self.guardian.dumper.budget.allowed(sample) if sample is not None else None

    def sample_now(self) -> Sample | None:
        """Take a sample immediately (also appended to the timeline)."""
        return self.sampler.sample_once()

    def _after_fork(self) -> None:
        # Runs in the child right after fork(): only the forking thread exists.
        self.pid = os.getpid()
        self.timeline.after_fork()
        self.guardian.after_fork()
        self.diagnosis.after_fork()
        self.sampler.after_fork()
