"""The one background thread: take a sample every interval and hand it on."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
import time
from collections.abc import Callable

from .procfs import AGENT_THREAD_COMM
from .sample import Sample, Source
from .timeline import Timeline

__all__ = ["Sampler"]

logger = logging.getLogger(__name__)

_PR_SET_NAME = 15


def _name_native_thread() -> None:
    """Name the OS thread so ``/proc/<pid>/task/*/comm`` shows which processes run oomguard."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_NAME, AGENT_THREAD_COMM.encode(), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # cosmetic: only the cross-process "runs_agent" column depends on it


class Sampler:
    """Samples ``source`` into ``timeline`` every ``interval`` seconds on a daemon thread.

    ``on_sample`` callbacks run on the sampler thread after each append; an error
    in one is logged once per kind and sampling goes on.
    """

    THREAD_NAME = "oomguard-sampler"

    def __init__(
        self,
        source: Source,
        timeline: Timeline,
        interval: float,
        on_sample: list[Callable[[Sample], None]] | None = None,
    ) -> None:
        self.source = source
        self.timeline = timeline
        self.interval = interval
        self.on_sample = on_sample if on_sample is not None else []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()
        self.cpu_seconds = 0.0
        """CPU time the sampler thread has used: the agent's own cost, measured."""

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no-op when running)."""
        if self.running:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and join it."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def wake(self) -> None:
        """Take the next sample now (kernel notifications call this)."""
        self._wake.set()

    def sample_once(self) -> Sample | None:
        """Take one sample, append it and run the callbacks; errors are logged, not raised."""
        try:
            sample = self.source.take()
        except Exception as exc:  # the host app must never see the agent's errors
            self._report("take", exc)
            return None
        self.timeline.append(sample)
        if sample.cgroup is not None and sample.cgroup.unreadable:
            self._report_text(
                "unreadable",
                f"cannot read {', '.join(sample.cgroup.unreadable)} "
                f"in {sample.cgroup.directory}: the readings are partial",
            )
        for callback in self.on_sample:
            try:
                callback(sample)
            except Exception as exc:  # noqa: PERF203 - each callback is isolated on purpose
                self._report(getattr(callback, "__qualname__", repr(callback)), exc)
        return sample

    def _report(self, where: str, exc: BaseException) -> None:
        key = f"{where}:{type(exc).__name__}"
        if key not in self._reported:
            self._reported.add(key)
            logger.error("oomguard sampler: %s failed: %r (reported once)", where, exc)

    def _report_text(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            logger.warning("oomguard: %s (reported once)", message)

    def _run(self) -> None:
        _name_native_thread()
        while not self._stop.is_set():
            started = time.thread_time()
            self.sample_once()
            self.cpu_seconds += time.thread_time() - started
            self._wake.wait(self.interval)
            self._wake.clear()

    def after_fork(self) -> None:
        """In a forked child: the thread did not survive the fork; start a fresh one."""
        self._thread = None
        self._wake = threading.Event()
        self._reported = set()
        self.start()
