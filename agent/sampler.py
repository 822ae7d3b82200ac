"""The one background thread: take a sample every interval and hand it on."""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable

from .events import KernelEvents, Waiter
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
        # CDLL(None): the symbols already loaded (libc's prctl). Not ctypes.util.find_library,
        # which runs `ldconfig -p` in a subprocess: the agent never spawns processes in the host.
        libc = ctypes.CDLL(None, use_errno=True)
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
        self._waiter = Waiter()
        self._thread: threading.Thread | None = None
        self.fast_interval: float | None = None
        """Set by the guard when pressure is high: sample this often instead."""
        self.wakeups = {"timeout": 0, "wake": 0, "kernel": 0}
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
        self._waiter.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        self.set_kernel_events(None)

    def wake(self) -> None:
        """Take the next sample now (safe from any thread and from signal handlers)."""
        self._waiter.wake()

    def set_kernel_events(self, events: KernelEvents | None) -> None:
        """Also wake on these kernel notifications (replacing earlier ones)."""
        old, self._waiter.events = self._waiter.events, events
        if old is not None and old is not events:
            old.close()

    @property
    def kernel_events(self) -> KernelEvents | None:
        """The kernel notifications the thread currently waits on."""
        return self._waiter.events

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
            except Exception as exc:  # each callback is isolated on purpose
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
            fast = self.fast_interval
            interval = min(self.interval, fast) if fast is not None else self.interval
            self.wakeups[self._waiter.wait(interval)] += 1

    def after_fork(self) -> None:
        """In a forked child: the thread did not survive the fork; start a fresh one."""
        self._thread = None
        # The pipe and kernel fds are shared with the parent: a wake-up must not
        # cross processes. Close our copies and register our own.
        self._waiter.close()
        self._waiter = Waiter()
        self._reported = set()
        self.start()
