"""The timeline: a bounded ring buffer of samples, safe to read from any thread."""

from __future__ import annotations

import threading
from collections import deque

from .sample import Sample

__all__ = ["Timeline"]


class Timeline:
    """The last ``size`` samples, oldest first."""

    def __init__(self, size: int) -> None:
        self._samples: deque[Sample] = deque(maxlen=size)
        self._lock = threading.Lock()

    def append(self, sample: Sample) -> None:
        """Add a sample, dropping the oldest when full."""
        with self._lock:
            self._samples.append(sample)

    def snapshot(self) -> tuple[Sample, ...]:
        """A consistent copy of the samples, oldest first."""
        with self._lock:
            return tuple(self._samples)

    def latest(self) -> Sample | None:
        """The newest sample, if any."""
        with self._lock:
            return self._samples[-1] if self._samples else None

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def size(self) -> int:
        """Capacity of the ring buffer."""
        return self._samples.maxlen or 0

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held by a thread)."""
        self._lock = threading.Lock()
