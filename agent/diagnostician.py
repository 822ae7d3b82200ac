"""The running diagnosis: the verdict kept fresh on the sampler thread, heap windows opened on suspicion.

Per sample it only polls an open heap window (a few microseconds). Every
``every`` seconds it opens a window when anonymous memory is rising (and the
duty cycle allows one), runs :func:`~oomguard.diagnosis.diagnose` over the
timeline and keeps the verdict for :meth:`verdict`, the status document, the
manifests and the admin API. A change of verdict is logged once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .diagnosis import LEAKS, Kind, Verdict, diagnose, growth_suspected
from .heap.windows import HeapEvidence, HeapWindows
from .sample import Sample
from .timeline import Timeline

__all__ = ["DIAGNOSIS_EVERY", "Diagnostician"]

logger = logging.getLogger(__name__)

DIAGNOSIS_EVERY = 2.0
"""Seconds between diagnoses: trends over minutes gain nothing from running every sample."""


class Diagnostician:
    """Keeps the verdict of one process fresh.

    Args:
        timeline: the sample ring buffer.
        windows: the heap-sampling windows; None turns attribution off.
        every: seconds between diagnoses.
        quiet: True while heap windows must not run (the guard's memray capture is
            streaming: it would record tracemalloc's own allocations and grow).
    """

    def __init__(
        self,
        timeline: Timeline,
        *,
        windows: HeapWindows | None = None,
        every: float = DIAGNOSIS_EVERY,
        quiet: Callable[[], bool] = lambda: False,
    ):
        self.timeline = timeline
        self.windows = windows
        self.every = every
        self._quiet = quiet
        self._last: float | None = None
        self._verdict = diagnose(())
        self._callbacks: list[Callable[[Verdict], None]] = []
        self._lock = threading.Lock()
        self.runs = 0

    def verdict(self) -> Verdict:
        """The latest verdict (``insufficient_data`` until there is enough of a timeline)."""
        return self._verdict

    def evidence(self) -> HeapEvidence:
        """What the heap windows found so far."""
        return self.windows.evidence() if self.windows is not None else HeapEvidence()

    def subscribe(self, callback: Callable[[Verdict], None]) -> None:
        """Call ``callback(verdict)`` on the sampler thread whenever the kind or the top suspect changes."""
        with self._lock:
            self._callbacks.append(callback)

    def on_sample(self, sample: Sample) -> None:
        """The sampler callback."""
        if self.windows is not None and self.windows.active:
            if self._quiet():
                self.windows.discard()
            else:
                self.windows.poll()
        if self._last is not None and sample.monotonic - self._last < self.every:
            return
        self._last = sample.monotonic
        self.run()

    def run(self) -> Verdict:
        """Diagnose now (and open a heap window if memory is rising)."""
        samples = self.timeline.snapshot()
        windows = self.windows
        if (
            windows is not None
            and not windows.active
            and not self._quiet()
            and growth_suspected(samples)
            and windows.ready()
        ):
            windows.open()
        verdict = diagnose(samples, self.evidence())
        self.runs += 1
        previous, self._verdict = self._verdict, verdict
        if _key(previous) != _key(verdict):
            self._changed(previous, verdict)
        return verdict

    def _changed(self, previous: Verdict, verdict: Verdict) -> None:
        if previous.kind is not verdict.kind:
            level = logging.WARNING if verdict.kind in LEAKS or verdict.kind is Kind.LIMIT_TOO_LOW else logging.INFO
            logger.log(
                level,
                "oomguard: verdict %s (confidence %.2f): %s",
                verdict.kind.value,
                verdict.confidence,
                verdict.summary,
            )
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(verdict)
            except Exception:  # a subscriber's bug must not stop the diagnosis
                logger.exception("oomguard: a verdict subscriber failed")

    def quiet_heap(self) -> None:
        """A memray capture is about to start: drop an open heap window (memray would record tracemalloc)."""
        if self.windows is not None:
            self.windows.discard()

    def close(self) -> None:
        """Stop an open heap window (the agent is stopping)."""
        if self.windows is not None:
            self.windows.close()

    def after_fork(self) -> None:
        """In a forked child: the parent's verdict and windows are not ours."""
        self._lock = threading.Lock()
        self._last = None
        self._verdict = diagnose(())
        if self.windows is not None:
            self.windows.after_fork()


def _key(verdict: Verdict) -> tuple[Kind, str | None]:
    return verdict.kind, verdict.suspects[0].where if verdict.suspects else None
