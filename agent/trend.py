"""Robust trends of memory series: Theil-Sen slopes over a window of samples.

Pure functions over ``(x, y)`` points (``x`` in seconds, usually
``Sample.monotonic``). The guard uses them on the working set; the diagnosis
uses them on anon, file, RSS, traced memory and threads. Theil-Sen (the median
of the pairwise slopes) shrugs off up to ~29% outliers — a GC pause, a single
odd read of ``memory.stat`` — where least squares would follow them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import median

from .sample import Sample

__all__ = [
    "MAX_PAIRS",
    "Point",
    "Trend",
    "fit",
    "is_plateau",
    "seconds_to_reach",
    "split_slope",
    "theil_sen",
    "window",
]

Point = tuple[float, float]
"""``(x, y)``: seconds and a value (bytes, a count)."""

MAX_PAIRS = 2000
"""Pairwise slopes computed at most: all pairs up to 63 points, a fixed subsample beyond."""

_SUBSAMPLE_SEED = 0x00C0FFEE  # any constant: the point is the same pairs for the same n on every call


@lru_cache(maxsize=64)
def _pair_indices(n: int, max_pairs: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``max_pairs`` distinct index pairs ``i < j`` of ``n`` points, the same on every call.

    A uniform sample of all ``n(n-1)/2`` pairs keeps the estimator an unbiased
    approximation of the full Theil-Sen median (a lag- or stride-based choice
    would weight some time scales over others). Cached: a sampler's window
    holds about the same number of points on every call.
    """
    total = n * (n - 1) // 2
    chosen = sorted(random.Random(_SUBSAMPLE_SEED + n).sample(range(total), max_pairs))
    first: list[int] = []
    second: list[int] = []
    for k in chosen:
        # Unrank k in the order (0,1), (0,2), (1,2), (0,3), …: j is the largest with j(j-1)/2 <= k.
        j = (1 + math.isqrt(1 + 8 * k)) // 2
        first.append(k - j * (j - 1) // 2)
        second.append(j)
    return tuple(first), tuple(second)


def theil_sen(points: Sequence[Point], *, max_pairs: int = MAX_PAIRS) -> float | None:
    """The Theil-Sen slope: the median of the slopes between pairs of points.

    Args:
        points: ``(x, y)`` points, in any order.
        max_pairs: bound on the pairs used; beyond it a fixed (deterministic)
            uniform subsample of the pairs is used, so the cost stays
            ``O(max_pairs)`` however long the series.

    Returns:
        The slope in y per unit of x, or None with fewer than two distinct x.
    """
    n = len(points)
    if n < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    if min(xs) == max(xs):
        return None
    if n * (n - 1) // 2 <= max_pairs:
        slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(n) for j in range(i + 1, n) if xs[j] != xs[i]]
    else:
        first, second = _pair_indices(n, max_pairs)
        slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i, j in zip(first, second, strict=True) if xs[j] != xs[i]]
        if not slopes:  # only when nearly every x repeats; the extremes still give a slope
            lo, hi = xs.index(min(xs)), xs.index(max(xs))
            slopes = [(ys[hi] - ys[lo]) / (xs[hi] - xs[lo])]
    return float(median(slopes))


def split_slope(points: Sequence[Point]) -> float | None:
    """The slope between the medians of the first and the last half of a series.

    The two-group median line (Nair and Shrivastava): coarse, but it sees only
    a change of *level*. Theil-Sen follows the teeth of a sawtooth (memory
    freed by a collection every few seconds) when a tooth is a good part of the
    window; this slope stays near zero then, so it is the check on a prediction.

    Args:
        points: ``(x, y)`` points, oldest first (as :func:`window` returns them).

    Returns:
        The slope, or None with fewer than two points or no time between the halves.
    """
    half = len(points) // 2
    if half == 0:
        return None
    first, last = points[:half], points[-half:]
    dx = median([x for x, _ in last]) - median([x for x, _ in first])
    if dx <= 0:
        return None
    return float(median([y for _, y in last]) - median([y for _, y in first])) / dx


@dataclass(frozen=True, slots=True)
class Trend:
    """A robust straight line through a series: ``y ≈ intercept + slope_per_s * x``."""

    slope_per_s: float
    """Theil-Sen slope, in y per second."""
    intercept: float
    """Value of the line at ``x = 0`` (the median of ``y - slope * x``)."""
    n: int
    """Points fitted."""
    span_s: float
    """Seconds between the first and last point."""
    r_noise: float
    """Median absolute residual: how far a typical point sits off the line."""

    def at(self, x: float) -> float:
        """The line's value at ``x``."""
        return self.intercept + self.slope_per_s * x

    @property
    def rise(self) -> float:
        """How much the line climbs over the fitted span (negative when falling)."""
        return self.slope_per_s * self.span_s


def fit(points: Sequence[Point], *, max_pairs: int = MAX_PAIRS) -> Trend | None:
    """Fit a :class:`Trend` to ``points`` (Theil-Sen slope, median intercept).

    Args:
        points: ``(x, y)`` points, in any order.
        max_pairs: passed to :func:`theil_sen`.

    Returns:
        The trend, or None with fewer than two distinct x.
    """
    slope = theil_sen(points, max_pairs=max_pairs)
    if slope is None:
        return None
    intercept = float(median([y - slope * x for x, y in points]))
    r_noise = float(median([abs(y - intercept - slope * x) for x, y in points]))
    xs = [x for x, _ in points]
    return Trend(slope, intercept, len(points), max(xs) - min(xs), r_noise)


def seconds_to_reach(level: float, current: float, slope_per_s: float) -> float | None:
    """Seconds until ``current`` reaches ``level`` at ``slope_per_s``.

    Returns:
        0.0 when already at or above ``level``; None when not rising (it never gets there).
    """
    if current >= level:
        return 0.0
    if slope_per_s <= 0:
        return None
    return (level - current) / slope_per_s


def window(samples: Sequence[Sample], seconds: float, value: Callable[[Sample], int | float | None]) -> list[Point]:
    """The ``(monotonic, value)`` points of the last ``seconds`` of a timeline.

    Only the newest process's series counts: a pid change (a restart, a fork)
    starts a new series, so points before the last change are left out. Samples
    whose ``value`` is None are skipped. Cost is proportional to the window, not
    to the timeline: it walks back from the newest sample.

    Args:
        samples: the timeline, oldest first.
        seconds: how far back from the newest sample to look (inclusive).
        value: what to read from each sample, e.g. ``lambda s: s.working_set_bytes``.

    Returns:
        The points, oldest first.
    """
    if not samples:
        return []
    newest = samples[-1]
    start = newest.monotonic - seconds
    points: list[Point] = []
    for sample in reversed(samples):
        if sample.pid != newest.pid or sample.monotonic < start:
            break
        y = value(sample)
        if y is not None:
            points.append((sample.monotonic, float(y)))
    points.reverse()
    return points


def is_plateau(points: Sequence[Point], *, rel_tolerance: float) -> bool:
    """True when the series is flat: its trend moves less than ``rel_tolerance`` of its level over its span.

    Args:
        points: ``(x, y)`` points.
        rel_tolerance: allowed ``|slope * span|`` as a fraction of the median level, e.g. 0.02.

    Returns:
        False when there is no trend to judge (fewer than two distinct x).
    """
    trend = fit(points)
    if trend is None:
        return False
    level = abs(float(median([y for _, y in points])))
    return abs(trend.rise) <= rel_tolerance * level
