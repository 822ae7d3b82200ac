"""Heap-sampling windows: tracemalloc on for a few seconds, only while growth is suspected.

Tracing every allocation all the time is too dear (measured on a Starlette JSON
endpoint: tracemalloc from the start cut throughput 6.8×). A *window* turns
tracemalloc on for ``seconds``, then takes a snapshot: everything it holds was
allocated during the window and is still alive at its end, grouped by
traceback and attributed to the innermost application frame. A duty cycle keeps
the average cost small: after a window of ``w`` seconds the next one waits
``w * (1 / duty - 1)`` seconds.

Two numbers per window let the diagnosis tell Python growth from native growth:

* ``traced_bytes``: allocated in the window and still alive — an *upper bound*
  on Python growth (a cache that replaces entries allocates without growing);
* ``net_blocks``: ``sys.getallocatedblocks()`` at the end minus at the start —
  the interpreter's *net* block count, so churn cancels out. Net blocks times
  the mean size of the window's live blocks estimates the net Python growth.

Both are compared with the process's anonymous memory growth over the *same*
window (minus tracemalloc's own memory), so the slowdown tracing causes while
on changes both sides alike.

Windows are bounded in memory too: the window stops early when the snapshot
it would take (≈200 B per traced block, measured) no longer fits the budget,
and skips the snapshot when even that does not fit.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..procfs import read_process
from .collectors import SNAPSHOT_BYTES_PER_BLOCK, TRACE_BYTES
from .suspects import AGENT_FRAME, Suspect, application_frame

__all__ = ["HeapEvidence", "HeapWindows", "WindowPolicy", "WindowResult", "rank_suspects"]

logger = logging.getLogger(__name__)

_KEPT_WINDOWS = 8


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """How long windows last, how often they may run and what they may cost.

    Raises:
        ValueError: a value is out of range.
    """

    seconds: float = 4.0
    """Shortest length of one window."""
    max_seconds: float = 16.0
    """A window stays open up to this long while the process's anon has grown less than ``min_growth_bytes``:
    tracing slows an allocation-heavy process (measured: 10-20×), and so its leak, inside the window."""
    min_growth_bytes: int = 1024 * 1024
    duty: float = 0.05
    """Largest fraction of wall time spent tracing, averaged over a window and the pause after it."""
    frames: int = 4
    """Frames kept per traceback (more frames cost more per allocation)."""
    max_blocks: int = 250_000
    """A window stops early when it holds more traced blocks than this."""
    top: int = 10
    """Sites kept per window."""

    def __post_init__(self) -> None:
        if (
            self.seconds <= 0
            or self.max_seconds < self.seconds
            or not 0 < self.duty <= 1
            or self.frames < 1
            or self.max_blocks < 1
            or self.top < 1
        ):
            raise ValueError(f"invalid heap window policy: {self}")

    @property
    def pause_s(self) -> float:
        """Pause after a window of the full length."""
        return self.seconds * (1 / self.duty - 1)


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What one window saw."""

    started: float
    """Monotonic time the window opened."""
    seconds: float
    traced_bytes: int
    """Allocated during the window and still alive at its end."""
    traced_blocks: int
    net_blocks: int
    """Net change of the interpreter's allocated blocks over the window."""
    anon_growth_bytes: int | None
    """The process's RssAnon growth over the window, tracemalloc's own memory taken out."""
    sites: tuple[Suspect, ...]
    """Live allocations grouped by application frame, largest first (empty when the snapshot was skipped)."""
    stopped: str
    """Why the window ended: ``"time"``, ``"budget"`` or ``"stop"`` (closed from outside)."""

    @property
    def python_growth_bytes(self) -> int:
        """Net Python growth estimate: net blocks × mean live block size, at most the traced bytes."""
        if self.traced_blocks <= 0 or self.net_blocks <= 0:
            return 0
        mean = self.traced_bytes / self.traced_blocks
        return int(min(self.traced_bytes, self.net_blocks * mean))


@dataclass(frozen=True, slots=True)
class HeapEvidence:
    """The heap windows' results, for the diagnosis."""

    windows: tuple[WindowResult, ...] = ()
    """Recent windows, oldest first."""
    suspects: tuple[Suspect, ...] = ()
    """Sites ranked over the windows (:func:`rank_suspects`)."""
    active: bool = False
    """A window is open now."""
    unavailable: str | None = None
    """Why windows cannot run (e.g. the application runs tracemalloc itself)."""

    def since(self, started: float) -> tuple[WindowResult, ...]:
        """Windows that opened at or after ``started`` (monotonic seconds)."""
        return tuple(w for w in self.windows if w.started >= started)


def rank_suspects(windows: Sequence[WindowResult], limit: int = 10) -> tuple[Suspect, ...]:
    """Rank allocation sites over repeated windows.

    A site whose allocations survive window after window is a leak's signature;
    a site seen once is a transient. So: most windows first, then most bytes.
    ``count`` is the live blocks summed over the windows; ``growth_bytes`` the bytes.
    """
    seen: dict[str, list[int]] = {}
    first: dict[str, Suspect] = {}
    for result in windows:
        for site in result.sites:
            entry = seen.setdefault(site.where, [0, 0, 0])
            entry[0] += 1
            entry[1] += site.size_bytes
            entry[2] += site.count
            first.setdefault(site.where, site)
    ranked = sorted(seen.items(), key=lambda kv: (kv[1][0], kv[1][1]), reverse=True)[:limit]
    return tuple(
        Suspect(
            where=where,
            size_bytes=size,
            count=count,
            growth_bytes=size,
            function=first[where].function,
            stack=first[where].stack,
        )
        for where, (_, size, count) in ranked
    )


def group_snapshot(snapshot: tracemalloc.Snapshot, top: int) -> tuple[Suspect, ...]:
    """Live allocations of ``snapshot`` grouped by their innermost application frame, largest first."""
    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}
    stacks: dict[str, tuple[str, ...]] = {}
    for stat in snapshot.statistics("traceback"):
        frames = list(stat.traceback)  # oldest first
        picked = application_frame([("", f.filename, f.lineno) for f in reversed(frames)])
        if picked is None or picked is AGENT_FRAME:
            continue  # the agent's own allocations
        where = f"{picked[1]}:{picked[2]}"
        sizes[where] = sizes.get(where, 0) + stat.size
        counts[where] = counts.get(where, 0) + stat.count
        stacks.setdefault(where, tuple(f"{f.filename}:{f.lineno}" for f in reversed(frames)))
    ranked = sorted(sizes, key=sizes.__getitem__, reverse=True)[:top]
    return tuple(Suspect(w, sizes[w], counts[w], sizes[w], stack=stacks[w]) for w in ranked)


def _own_anon() -> int | None:
    return read_process(None).anon_bytes


class HeapWindows:
    """Opens and closes heap-sampling windows; keeps the last few results.

    Driven from one thread (the sampler's): :meth:`open` when growth is
    suspected, :meth:`poll` on every sample. Nothing runs on its own.

    Args:
        policy: window length, duty cycle, frames and bounds.
        budget: extra bytes a snapshot may use now (e.g. the dump budget); None: unbounded.
        anon: reads the process's anonymous memory (RssAnon); injectable for tests.
        clock: monotonic clock.
    """

    def __init__(
        self,
        policy: WindowPolicy | None = None,
        *,
        budget: Callable[[], int | None] | None = None,
        anon: Callable[[], int | None] = _own_anon,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy if policy is not None else WindowPolicy()
        self._budget = budget
        self._anon = anon
        self._clock = clock
        self._lock = threading.Lock()
        self._results: list[WindowResult] = []
        self._suspects: tuple[Suspect, ...] = ()
        self._open_at: float | None = None
        self._start_blocks = 0
        self._start_anon: int | None = None
        self._next_allowed = 0.0
        self.unavailable: str | None = None
        self.traced_seconds = 0.0
        """Total seconds spent with tracing on: the duty cycle, measured."""

    @property
    def active(self) -> bool:
        """True while a window is open."""
        return self._open_at is not None

    def ready(self, now: float | None = None) -> bool:
        """Whether a window may open now (none open, the pause is over, tracemalloc is free)."""
        now = self._clock() if now is None else now
        return self._open_at is None and now >= self._next_allowed and not tracemalloc.is_tracing()

    def open(self) -> bool:
        """Start a window; False when one cannot start now."""
        now = self._clock()
        if not self.ready(now):
            if self._open_at is None and tracemalloc.is_tracing():
                self.unavailable = "the application runs tracemalloc itself: its traced memory is used instead"
            return False
        self.unavailable = None
        self._start_anon = self._anon()
        self._start_blocks = sys.getallocatedblocks()
        tracemalloc.start(self.policy.frames)
        self._open_at = now
        return True

    def _allowed(self) -> int | None:
        return self._budget() if self._budget is not None else None

    def poll(self) -> WindowResult | None:
        """Close the open window when its time is up or it outgrows its budget; the result, if closed."""
        started = self._open_at
        if started is None:
            return None
        now = self._clock()
        elapsed = now - started
        if elapsed >= self.policy.seconds and (elapsed >= self.policy.max_seconds or self._grown_enough()):
            return self.close("time")
        blocks = tracemalloc.get_tracemalloc_memory() // TRACE_BYTES
        allowed = self._allowed()
        if blocks > self.policy.max_blocks or (allowed is not None and blocks * SNAPSHOT_BYTES_PER_BLOCK > allowed):
            return self.close("budget")
        return None

    def _grown_enough(self) -> bool:
        start, now = self._start_anon, self._anon()
        if start is None or now is None:
            return True  # cannot tell: the shortest window it is
        return now - start - tracemalloc.get_tracemalloc_memory() >= self.policy.min_growth_bytes

    def close(self, reason: str = "stop") -> WindowResult | None:
        """Stop tracing and record what the window saw (None when no window was open)."""
        started, self._open_at = self._open_at, None
        if started is None:
            return None
        try:
            traced, _ = tracemalloc.get_traced_memory()
            tracer = tracemalloc.get_tracemalloc_memory()
            net_blocks = sys.getallocatedblocks() - self._start_blocks
            end_anon = self._anon()
            estimate = (tracer // TRACE_BYTES) * SNAPSHOT_BYTES_PER_BLOCK
            allowed = self._allowed()
            snapshot = None
            if allowed is None or estimate <= allowed:
                snapshot = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()  # statistics are 10-40× faster once tracing is off
        now = self._clock()
        elapsed = now - started
        self.traced_seconds += elapsed
        self._next_allowed = now + elapsed * (1 / self.policy.duty - 1)
        sites: tuple[Suspect, ...] = ()
        blocks = tracer // TRACE_BYTES
        if snapshot is not None:
            blocks = len(snapshot.traces)
            sites = group_snapshot(snapshot, self.policy.top)
            del snapshot
        growth = None
        if end_anon is not None and self._start_anon is not None:
            growth = end_anon - self._start_anon - tracer
        result = WindowResult(started, elapsed, traced, blocks, net_blocks, growth, sites, reason)
        with self._lock:
            self._results = [*self._results, result][-_KEPT_WINDOWS:]
            self._suspects = rank_suspects(self._results)
        return result

    def discard(self) -> None:
        """Stop an open window and keep nothing (a memray capture is starting: it must not record the window)."""
        if self._open_at is not None:
            self._open_at = None
            tracemalloc.stop()
            self._next_allowed = self._clock() + self.policy.pause_s

    def evidence(self) -> HeapEvidence:
        """The results so far (safe from any thread)."""
        with self._lock:
            return HeapEvidence(tuple(self._results), self._suspects, self.active, self.unavailable)

    def after_fork(self) -> None:
        """In a forked child: a window the parent had open is traced here too; stop it, start afresh."""
        if self._open_at is not None and tracemalloc.is_tracing():
            tracemalloc.stop()
        self._open_at = None
        self._lock = threading.Lock()
        self._results = []
        self._suspects = ()
        self._next_allowed = 0.0
