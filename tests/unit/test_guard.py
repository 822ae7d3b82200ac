from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterable

import pytest

from oomguard.errors import ConfigError
from oomguard.guard import Action, Guard, GuardDecision, GuardSettings, GuardState
from oomguard.sample import Sample
from tests.support.samples import MiB, make_sample

LIMIT = 256 * MiB
INACTIVE = 10 * MiB  # make_sample's default: working set = usage - 10 MiB


def at(t: float, pressure: float, *, limit: int = LIMIT, pid: int = 100) -> Sample:
    """A sample whose working set is ``pressure`` of ``limit``."""
    return make_sample(t, usage=round(pressure * limit) + INACTIVE, limit=limit, pid=pid)


def series(pressure: Callable[[float], float], seconds: float, dt: float, *, start: float = 0.0) -> list[Sample]:
    steps = round(seconds / dt)
    return [at(start + i * dt, pressure(start + i * dt)) for i in range(steps + 1)]


def run(guard: Guard, samples: Iterable[Sample]) -> list[GuardDecision]:
    """Feed the samples one by one, as the sampler does, with the growing timeline."""
    timeline: list[Sample] = []
    decisions = []
    for sample in samples:
        timeline.append(sample)
        decisions.append(guard.observe(timeline))
    return decisions


def acted(decisions: list[GuardDecision]) -> list[GuardDecision]:
    return [d for d in decisions if d.action is not Action.NONE]


def actions(decisions: list[GuardDecision]) -> list[Action]:
    return [d.action for d in acted(decisions)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_plateau_at_70_percent_never_arms(seed: int) -> None:
    rng = random.Random(seed)
    guard = Guard(GuardSettings())
    decisions = run(guard, series(lambda t: 0.70 + rng.uniform(-0.01, 0.01), 600, 1.0))
    assert actions(decisions) == []
    assert guard.state is GuardState.CALM
    # noise may tilt the trend now and then, never into the arming horizon
    assert all(d.seconds_to_limit is None or d.seconds_to_limit > 30 for d in decisions)


def test_rise_to_85_then_back_arms_then_disarms_without_dump() -> None:
    def pressure(t: float) -> float:
        if t < 20:
            return 0.60
        if t < 45:
            return min(0.85, 0.60 + 0.01 * (t - 20))
        if t < 60:
            return 0.85
        return 0.60

    guard = Guard(GuardSettings())
    decisions = run(guard, series(pressure, 120, 1.0))
    arm, disarm = acted(decisions)
    assert (arm.action, disarm.action) == (Action.ARM, Action.DISARM)
    assert arm.pressure is not None
    assert 0.6 < arm.pressure <= 0.80 + 1e-6  # by threshold, or earlier by prediction
    assert disarm.state is GuardState.CALM
    disarmed_at = decisions.index(disarm)
    assert disarmed_at >= 60 + 10  # below 75% at t=60, then calm_seconds
    assert "below 75% for 10 s" in disarm.reason


def test_crossing_90_percent_dumps_once_per_episode() -> None:
    def pressure(t: float) -> float:
        return min(0.60 + 0.01 * t, 0.90 + 0.03 * math.sin(t))  # climbs, then wobbles across 90%

    guard = Guard(GuardSettings())
    samples = series(pressure, 200, 1.0)
    decisions = run(guard, samples[:40])
    guard.after_dump(ok=True)
    decisions += run(guard, samples)
    assert actions(decisions) == [Action.ARM, Action.DUMP]
    dump = acted(decisions)[1]
    assert dump.trigger == "threshold"
    assert "≥ DUMP_AT 90%" in dump.reason
    assert "at once" not in dump.reason
    assert guard.state is GuardState.DUMPED
    assert guard.last_dump_ok is True


def test_after_a_reset_a_new_episode_can_dump_again() -> None:
    def episode(t: float) -> float:
        return 0.50 if t < 10 or t >= 60 else min(0.95, 0.50 + 0.02 * (t - 10))

    guard = Guard(GuardSettings())
    first = run(guard, series(episode, 90, 1.0))
    assert actions(first) == [Action.ARM, Action.DUMP]
    guard.after_dump(ok=False)  # even a failed bundle ends the episode only once calm
    second = run(guard, series(lambda t: episode(t - 100.0), 90, 1.0, start=100.0))
    assert actions(second) == [Action.RESET, Action.ARM, Action.DUMP]
    assert guard.last_dump_ok is False


def test_no_reset_while_the_bundle_is_being_written() -> None:
    guard = Guard(GuardSettings())
    high = series(lambda t: 0.95, 3, 1.0)
    calm = series(lambda t: 0.40, 30, 1.0, start=4.0)
    decisions = run(guard, high + calm)
    assert actions(decisions) == [Action.DUMP]
    assert "still being written" in decisions[-1].reason
    guard.after_dump(ok=True)
    assert guard.observe(high + calm).action is Action.RESET
    assert guard.state is GuardState.CALM


def test_page_cache_filling_the_limit_never_arms() -> None:
    def cache(t: float) -> Sample:
        inactive = round((0.10 + 0.0045 * t) * LIMIT)  # grows to 0.49 of the limit
        file = inactive + 10 * MiB
        return make_sample(t, usage=LIMIT // 2 + inactive, inactive_file=inactive, file=file, limit=LIMIT)

    samples = [cache(float(t)) for t in range(101)]
    assert samples[-1].usage_bytes is not None
    assert samples[-1].usage_bytes / LIMIT > 0.98
    guard = Guard(GuardSettings())
    decisions = run(guard, samples)
    assert actions(decisions) == []
    assert decisions[-1].pressure == pytest.approx(0.5)


def test_fast_growth_gets_a_predicted_dump_before_90_percent() -> None:
    rate = 400e6 / LIMIT  # 400 MB/s as a fraction of the limit per second
    guard = Guard(GuardSettings())
    decisions = run(guard, series(lambda t: 0.40 + rate * t, 0.2, 0.05))
    [dump] = acted(decisions)
    assert (dump.action, dump.trigger) == (Action.DUMP, "predicted")
    assert dump.pressure is not None
    assert dump.pressure < 0.90
    assert dump.seconds_to_limit is not None
    assert dump.seconds_to_limit < 2.0 * 1.5 + 0.05
    assert "armed and dumped at once" in dump.reason
    assert guard.state is GuardState.DUMPED


def test_slow_growth_arms_by_threshold_first() -> None:
    limit = 4096 * MiB
    rate = 20e6 / limit  # 20 MB/s

    guard = Guard(GuardSettings())
    samples = [at(float(t), 0.50 + rate * t, limit=limit) for t in range(100)]
    arm, dump = acted(run(guard, samples))
    assert (arm.action, arm.trigger) == (Action.ARM, "threshold")
    assert (dump.action, dump.trigger) == (Action.DUMP, "threshold")
    assert arm.pressure is not None
    assert 0.80 <= arm.pressure < 0.81
    assert arm.seconds_to_limit is not None
    assert arm.seconds_to_limit > 30  # the trend saw it too, but not within the horizon


def test_missing_limit_decides_nothing() -> None:
    no_limit = dataclasses.replace(make_sample(0.0, limit=None), host=None)
    assert no_limit.limit_bytes is None
    guard = Guard(GuardSettings())
    decision = guard.observe([at(-1.0, 0.95), no_limit])
    assert decision == GuardDecision(GuardState.CALM, Action.NONE, None, decision.reason, None, None)
    assert "limit is unknown" in decision.reason
    assert guard.observe([]).action is Action.NONE


def test_bundle_seconds_moves_the_predicted_dump_point() -> None:
    rate = 2 * MiB / LIMIT  # 2 MiB/s

    def episode(bundle_seconds: float) -> list[GuardDecision]:
        guard = Guard(GuardSettings(arm_horizon_s=30.0))
        guard.set_bundle_seconds(bundle_seconds)
        assert guard.bundle_seconds == bundle_seconds
        return acted(run(guard, series(lambda t: 0.70 + rate * t, 60, 0.5)))

    short_arm, short_dump = episode(2.0)
    long_arm, long_dump = episode(10.0)
    assert short_arm.trigger == long_arm.trigger == "predicted"
    assert short_dump.trigger == "threshold"  # 3.5 s of lead is under 90% already
    assert long_dump.trigger == "predicted"
    assert long_dump.pressure is not None
    assert long_dump.pressure < 0.89
    assert long_dump.seconds_to_limit is not None
    assert 14.5 < long_dump.seconds_to_limit < 10.0 * 1.5 + 0.5
    assert "1.5 x 10.0 s bundle + 0.50 s sampling" in long_dump.reason


@pytest.mark.parametrize("dt", [1.0, 0.25, 0.05])
def test_gc_sawtooth_around_75_percent_does_not_arm(dt: float) -> None:
    def sawtooth(t: float) -> float:
        return 0.71 + 0.08 * ((t % 3.0) / 3.0)  # 71% → 79% over 3 s, then a collection

    guard = Guard(GuardSettings())
    decisions = run(guard, series(sawtooth, 120, dt))
    assert actions(decisions) == []


def test_threshold_rules_only_with_too_few_points() -> None:
    guard = Guard(GuardSettings())
    steep = [at(0.0, 0.50), at(0.1, 0.70)]
    decision = guard.observe(steep)
    assert decision.action is Action.NONE
    assert decision.seconds_to_limit is None
    assert guard.observe([*steep, at(0.2, 0.75)]).trigger == "predicted"  # a third point: a trend
    jump = Guard(GuardSettings()).observe([at(0.0, 0.5), at(0.1, 0.92)])
    assert (jump.action, jump.trigger) == (Action.DUMP, "threshold")


def test_trend_ignores_the_previous_process() -> None:
    old = series(lambda t: 0.50 + 0.02 * t, 9, 1.0)  # the limit 15 s away
    new = [at(t, 0.68, pid=200) for t in (10.0, 11.0, 12.0)]
    assert Guard(GuardSettings(arm_horizon_s=30.0)).observe(old + new).action is Action.NONE
    same_pid = [dataclasses.replace(s, pid=100) for s in new]
    decision = Guard(GuardSettings(arm_horizon_s=30.0)).observe(old + same_pid)
    assert (decision.action, decision.trigger) == (Action.ARM, "predicted")


def test_predicted_arm_waits_for_half_a_window_of_evidence() -> None:
    decisions = run(Guard(GuardSettings()), series(lambda t: 0.50 + 0.03 * t, 8, 0.5))  # limit ~17 s away
    [arm] = acted(decisions)
    assert (arm.action, arm.trigger) == (Action.ARM, "predicted")
    assert decisions.index(arm) * 0.5 == 5.0  # not on the first three points
    assert "DUMP_AT 90% in" in arm.reason
    assert "≤ 10 s horizon" in arm.reason


def test_short_burst_far_from_the_limit_does_not_arm() -> None:
    burst = series(lambda t: 0.10 + 0.3 * t, 0.5, 0.05)  # 10% → 25% in half a second
    assert actions(run(Guard(GuardSettings()), burst)) == []


def test_threshold_reason_has_the_numbers() -> None:
    decision = Guard(GuardSettings()).observe([make_sample(0.0, usage=241 * MiB, limit=LIMIT)])
    assert decision.reason == (
        "fast growth, armed and dumped at once: working set 231.0 MiB = 90.2% of 256.0 MiB limit ≥ DUMP_AT 90%"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"arm_at": 0.9, "dump_at": 0.8},
        {"dump_at": 1.2},
        {"hysteresis": 0.9},
        {"calm_seconds": -1.0},
        {"min_points": 1},
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="guard"):
        GuardSettings(**changes)  # type: ignore[arg-type]


def test_negative_bundle_seconds_are_refused() -> None:
    with pytest.raises(ValueError, match="bundle seconds"):
        Guard(GuardSettings()).set_bundle_seconds(-1.0)


def test_a_perfectly_flat_series_with_a_slow_creep_still_disarms() -> None:
    # After the drop the working set is flat but for a creep of 4 KiB/s (the agent's own
    # timeline filling): no noise at all, so the creep is "significant" — yet it leads
    # nowhere near ARM_AT, and the episode must end.
    def pressure(t: float) -> float:
        if t < 10:
            return 0.85
        return 0.08 + (t - 10) * 4096 / LIMIT

    decisions = run(Guard(GuardSettings()), series(pressure, 40, 0.05))
    assert actions(decisions) == [Action.ARM, Action.DISARM]


def test_a_creep_back_towards_arm_at_keeps_the_episode_open() -> None:
    def pressure(t: float) -> float:
        return 0.85 if t < 10 else 0.60 + (t - 10) * 0.008  # below 75 % until 28.75 s, heading for 80 %

    assert actions(run(Guard(GuardSettings()), series(pressure, 28, 0.1))) == [Action.ARM]
