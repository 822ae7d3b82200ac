"""The guard: when to arm a capture and when to write the bundle (SPEC §5).

A pure state machine, calm → armed → dumped → calm, fed the timeline on every
sample. Pressure is the **working set** (usage - inactive_file) over the
effective limit, never raw usage: page cache filling the limit is reclaimed by
the kernel and never arms. Besides the thresholds, a Theil-Sen trend of the
working set predicts when the limit will be reached, so a fast leak arms and
dumps early enough for the bundle to finish before the kill.

The trend is robust by design, so it reacts to a *change* of slope only once a
good part of its window follows the new slope; growth faster than that, or
faster than the sampling, is caught by the thresholds (and by the kernel's
notifications, which wake the sampler).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .errors import ConfigError
from .sample import Sample
from .trend import fit, seconds_to_reach, split_slope, window

__all__ = ["Action", "Guard", "GuardDecision", "GuardSettings", "GuardState"]

_MiB = 1024 * 1024

PREDICT_FLOOR = 0.5
"""Predictions arm or dump only from ``arm_at * PREDICT_FLOOR`` up: a short burst at 10% is not a leak."""

DUMP_MARGIN = 1.5
"""A predicted dump leaves the bundle 1.5 times its estimated duration (plus one sampling interval)."""

SIGNIFICANCE = 2.0
"""A trend counts only when its rise over the window exceeds this many times its noise (GC sawtooth)."""

ARM_EVIDENCE = 0.5
"""A predicted arm needs points over this fraction of the trend window: a 30 s forecast from 2 s of data is noise."""

TREND_MAX_PAIRS = 600
#: An episode ends only if the trend does not reach ARM_AT within this many arm horizons.
CALM_HORIZON = 3.0
"""Pairwise slopes per decision: at 20 Hz a 10 s window has 200 points (19 900 pairs); 600 keep it cheap."""


class GuardState(str, Enum):
    """Where the guard is in an episode."""

    CALM = "calm"
    ARMED = "armed"
    DUMPED = "dumped"


class Action(str, Enum):
    """What the caller must do after an observation."""

    NONE = "none"
    ARM = "arm"
    """Start the streaming capture."""
    DUMP = "dump"
    """Write the bundle (start the capture first if it is not running: a dump from calm)."""
    DISARM = "disarm"
    """Stop the capture; the episode ended without a bundle."""
    RESET = "reset"
    """The episode that produced a bundle is over; a new one may dump again."""


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """The outcome of one observation."""

    state: GuardState
    """State after this observation."""
    action: Action
    """What the caller must do now (at most one action per observation)."""
    trigger: str | None
    """``"threshold"`` or ``"predicted"`` for ARM and DUMP; None otherwise."""
    reason: str
    """One sentence, with the numbers behind the decision."""
    pressure: float | None
    """Working set / effective limit of the newest sample."""
    seconds_to_limit: float | None
    """Predicted by the trend; None when not rising or unknown."""


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Thresholds and timings of the guard.

    Raises:
        ConfigError: a value is out of range (the message names it).
    """

    arm_at: float = 0.80
    dump_at: float = 0.90
    bundle_seconds: float = 2.0
    """Estimated time a bundle needs; the caller updates it with measured durations."""
    arm_horizon_s: float = 10.0
    """Arm early when DUMP_AT is predicted within this: a fast leak then still gets
    seconds of capture before the bundle, while a service warming up slowly to a
    plateau below ARM_AT does not arm."""
    hysteresis: float = 0.05
    """Disarm or reset only below ``arm_at - hysteresis`` …"""
    calm_seconds: float = 10.0
    """… continuously for this long, with a trend that is not rising."""
    trend_window_s: float = 10.0
    min_points: int = 3
    """Fewer points in the trend window: threshold rules only."""

    def __post_init__(self) -> None:
        if not 0 < self.arm_at < self.dump_at <= 1:
            raise ConfigError(
                f"guard: need 0 < arm_at < dump_at <= 1, got arm_at={self.arm_at}, dump_at={self.dump_at}"
            )
        if not 0 <= self.hysteresis < self.arm_at:
            raise ConfigError(f"guard: hysteresis must be in [0, arm_at), got {self.hysteresis}")
        for name in ("bundle_seconds", "arm_horizon_s", "calm_seconds", "trend_window_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"guard: {name} must be >= 0, got {getattr(self, name)}")
        if self.min_points < 2:
            raise ConfigError(f"guard: min_points must be >= 2, got {self.min_points}")


@dataclass(frozen=True, slots=True)
class _Reading:
    """What one observation knows: the newest sample's numbers and the trend."""

    pressure: float
    working_set: int
    limit: int
    slope_per_s: float | None
    """The rise the prediction uses; None when the trend is unknown or not rising significantly."""
    seconds_to_limit: float | None
    span_s: float
    """Seconds the trend's points cover (0 without a trend)."""
    interval_s: float
    """Mean sampling interval in the window (0 when unknown)."""

    def describe(self) -> str:
        return (
            f"working set {self.working_set / _MiB:.1f} MiB = {self.pressure:.1%} of {self.limit / _MiB:.1f} MiB limit"
        )

    def describe_trend(self) -> str:
        if self.slope_per_s is None or self.seconds_to_limit is None:
            return ""
        return f", rising {self.slope_per_s / _MiB:.1f} MiB/s: limit in {self.seconds_to_limit:.1f} s"


class Guard:
    """Decides, on every sample, whether to arm, dump, disarm or reset (SPEC §5).

    Pure: no threads, files or clocks; time comes from the samples. Not
    thread-safe: one sampler thread owns it.

    Args:
        settings: thresholds and timings.
    """

    def __init__(self, settings: GuardSettings) -> None:
        self._settings = settings
        self._state = GuardState.CALM
        self._bundle_seconds = settings.bundle_seconds
        self._dump_running = False
        self._last_dump_ok: bool | None = None

    @property
    def state(self) -> GuardState:
        """The current state."""
        return self._state

    @property
    def bundle_seconds(self) -> float:
        """The bundle duration predictions plan for."""
        return self._bundle_seconds

    @property
    def last_dump_ok(self) -> bool | None:
        """How the last bundle ended (None before the first one)."""
        return self._last_dump_ok

    def set_bundle_seconds(self, seconds: float) -> None:
        """Plan predicted dumps for bundles that take ``seconds`` (e.g. the last measured duration)."""
        if seconds < 0:
            raise ValueError(f"bundle seconds must be >= 0, got {seconds}")
        self._bundle_seconds = seconds

    def after_dump(self, ok: bool) -> None:
        """The caller reports that the bundle finished (``ok``) or failed.

        The guard stays DUMPED until the pressure is calm again: one bundle per
        episode, whether it succeeded or not. It does not reset while a bundle
        is still being written.
        """
        self._dump_running = False
        self._last_dump_ok = ok

    def observe(self, samples: Sequence[Sample]) -> GuardDecision:
        """Decide on the newest sample of the timeline.

        Args:
            samples: the timeline snapshot, oldest first. Only the trend window
                (and, when armed, the calm window) is read: the cost does not
                grow with the timeline.

        Returns:
            The decision; its ``action`` is for the caller to carry out now.
        """
        if not samples:
            return self._decide(Action.NONE, None, "no samples yet", None)
        newest = samples[-1]
        limit, working_set, pressure = newest.limit_bytes, newest.working_set_bytes, newest.pressure
        if limit is None or working_set is None or pressure is None:
            missing = "limit" if not limit else "working set"
            return self._decide(Action.NONE, None, f"no decision: the {missing} is unknown", None)
        reading = self._read(samples, pressure, working_set, limit)
        if self._state is GuardState.DUMPED:
            return self._from_dumped(samples, reading)
        dump = self._dump_trigger(reading)
        if dump is not None:
            trigger, why = dump
            if self._state is GuardState.CALM:
                why = f"fast growth, armed and dumped at once: {why}"
            self._state = GuardState.DUMPED
            self._dump_running = True
            return self._decide(Action.DUMP, trigger, why, reading)
        if self._state is GuardState.CALM:
            arm = self._arm_trigger(reading)
            if arm is None:
                return self._decide(Action.NONE, None, f"calm: {reading.describe()}{reading.describe_trend()}", reading)
            self._state = GuardState.ARMED
            return self._decide(Action.ARM, arm[0], arm[1], reading)
        calm = self._calm_for(samples, reading)
        if calm is None:
            return self._decide(Action.NONE, None, f"armed: {reading.describe()}{reading.describe_trend()}", reading)
        self._state = GuardState.CALM
        return self._decide(Action.DISARM, None, f"disarmed: {calm}", reading)

    def _from_dumped(self, samples: Sequence[Sample], reading: _Reading) -> GuardDecision:
        calm = self._calm_for(samples, reading)
        if calm is None:
            why = f"dumped, one bundle per episode: {reading.describe()}{reading.describe_trend()}"
            return self._decide(Action.NONE, None, why, reading)
        if self._dump_running:
            return self._decide(Action.NONE, None, f"calm, but the bundle is still being written: {calm}", reading)
        self._state = GuardState.CALM
        return self._decide(Action.RESET, None, f"episode over: {calm}", reading)

    def _read(self, samples: Sequence[Sample], pressure: float, working_set: int, limit: int) -> _Reading:
        settings = self._settings
        points = window(samples, settings.trend_window_s, _working_set)
        trend = fit(points, max_pairs=TREND_MAX_PAIRS) if len(points) >= settings.min_points else None
        slope = seconds = None
        # A rise lost in its own noise (jitter, a GC sawtooth) predicts nothing.
        if trend is not None and trend.rise > SIGNIFICANCE * trend.r_noise:
            # Theil-Sen follows the teeth of a sawtooth whose period is a good part of the window;
            # the split slope sees only a change of level. Predict only from what both agree on.
            slope = min(trend.slope_per_s, split_slope(points) or 0.0)
            seconds = seconds_to_reach(limit, working_set, slope)
        interval = trend.span_s / (trend.n - 1) if trend is not None else 0.0
        span = trend.span_s if trend is not None else 0.0
        return _Reading(pressure, working_set, limit, slope if seconds is not None else None, seconds, span, interval)

    def _dump_trigger(self, reading: _Reading) -> tuple[str, str] | None:
        settings = self._settings
        if reading.pressure >= settings.dump_at:
            return "threshold", f"{reading.describe()} ≥ DUMP_AT {settings.dump_at:.0%}"
        lead = self._bundle_seconds * DUMP_MARGIN + reading.interval_s
        if (
            reading.seconds_to_limit is not None
            and reading.seconds_to_limit < lead
            and reading.pressure >= settings.arm_at * PREDICT_FLOOR
        ):
            why = (
                f"{reading.describe()}{reading.describe_trend()} < {lead:.1f} s "
                f"({DUMP_MARGIN} x {self._bundle_seconds:.1f} s bundle + {reading.interval_s:.2f} s sampling)"
            )
            return "predicted", why
        return None

    def _arm_trigger(self, reading: _Reading) -> tuple[str, str] | None:
        settings = self._settings
        if reading.pressure >= settings.arm_at:
            return "threshold", f"{reading.describe()} ≥ ARM_AT {settings.arm_at:.0%}"
        to_dump = (
            seconds_to_reach(settings.dump_at * reading.limit, reading.working_set, reading.slope_per_s)
            if reading.slope_per_s is not None
            else None
        )
        if (
            to_dump is not None
            and to_dump <= settings.arm_horizon_s
            and reading.pressure >= settings.arm_at * PREDICT_FLOOR
            and reading.span_s >= settings.trend_window_s * ARM_EVIDENCE
        ):
            why = (
                f"{reading.describe()}{reading.describe_trend()}; DUMP_AT {settings.dump_at:.0%} in {to_dump:.1f} s "
                f"≤ {settings.arm_horizon_s:.0f} s horizon"
            )
            return "predicted", why
        return None

    def _calm_for(self, samples: Sequence[Sample], reading: _Reading) -> str | None:
        """Why the episode is over, or None while it is not.

        Over when the pressure stayed below ``arm_at - hysteresis`` for
        ``calm_seconds`` and the trend is not rising. Read from the timeline,
        not counted across calls, so a spike between two observations still counts.
        """
        settings = self._settings
        low = settings.arm_at - settings.hysteresis
        if reading.pressure >= low:
            return None
        # "Not rising" means not heading back to ARM_AT soon. A flat series has no
        # noise at all, so the slightest creep (the agent's own timeline filling)
        # is "significant": judge the rise by where it leads, not by its noise.
        if reading.slope_per_s is not None:
            back = seconds_to_reach(settings.arm_at * reading.limit, reading.working_set, reading.slope_per_s)
            if back is not None and back <= CALM_HORIZON * settings.arm_horizon_s:
                return None
        newest = samples[-1].monotonic
        for sample in reversed(samples):
            pressure = sample.pressure
            if pressure is not None and pressure >= low:
                return None
            if newest - sample.monotonic >= settings.calm_seconds:
                return f"{reading.describe()}, below {low:.0%} for {settings.calm_seconds:.0f} s and not rising"
        return None  # the timeline is shorter than calm_seconds

    def _decide(self, action: Action, trigger: str | None, reason: str, reading: _Reading | None) -> GuardDecision:
        return GuardDecision(
            state=self._state,
            action=action,
            trigger=trigger,
            reason=reason,
            pressure=reading.pressure if reading is not None else None,
            seconds_to_limit=reading.seconds_to_limit if reading is not None else None,
        )


def _working_set(sample: Sample) -> int | None:
    return sample.working_set_bytes
