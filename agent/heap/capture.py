"""The armed capture: memray streaming every allocation into the bundle folder.

memray's default (all-allocations) format writes through a shared mmap as the
program runs, so the file stays readable when the kernel SIGKILLs the process
mid-capture (measured: ``memray stats`` shows the peak and the leaking line);
the aggregated format leaves an empty file and is not used. Python allocators
are not traced (1.3× on allocation-heavy code instead of ~2.3×): small objects
show up as the pymalloc arenas their allocating line asked for.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

__all__ = ["CAPTURE_NAME", "Capture", "memray_available"]

logger = logging.getLogger(__name__)

CAPTURE_NAME = "memray.bin"


def memray_available() -> bool:
    """Whether memray can be imported on this platform."""
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


class Capture:
    """One memray capture into ``path``; started and stopped from any thread.

    Only one memray tracker can run per process; :meth:`start` returns False
    (and logs once) when another one is active, e.g. the app runs under
    ``memray run`` itself.

    Args:
        path: the capture file (inside the bundle folder).
        buffered: write with ``write()`` instead of a shared mmap, for volumes
            without shared writable mmap (some network filesystems).
    """

    def __init__(self, path: Path, *, buffered: bool = False) -> None:
        self.path = path
        self.buffered = buffered
        self._tracker: Any = None
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def active(self) -> bool:
        """True between a successful start and stop."""
        return self._tracker is not None

    def start(self) -> bool:
        """Start tracking every allocation of the process into :attr:`path`."""
        with self._lock:
            if self._tracker is not None:
                return True
            try:
                import memray

                destination = memray.FileDestination(
                    self.path, overwrite=True, compress_on_exit=False, buffered=self.buffered
                )
                tracker = memray.Tracker(destination=destination, memory_interval_ms=100)
                tracker.__enter__()
            except Exception as exc:  # ImportError, a tracker already active, an unwritable volume
                self.error = f"memray capture not started: {exc}"
                logger.warning("oomguard: %s", self.error)
                return False
            self._tracker = tracker
            return True

    def stop(self) -> bool:
        """Stop tracking; the file is then complete. Returns whether a capture was running."""
        with self._lock:
            tracker, self._tracker = self._tracker, None
        if tracker is None:
            return False
        try:
            tracker.__exit__(None, None, None)
        except Exception as exc:
            self.error = f"memray capture did not stop cleanly: {exc}"
            logger.warning("oomguard: %s", self.error)
        return True
