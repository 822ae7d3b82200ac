from __future__ import annotations

import random

import pytest

from oomguard.sample import Sample
from oomguard.trend import Trend, fit, is_plateau, seconds_to_reach, split_slope, theil_sen, window
from tests.support.samples import MiB, make_sample


def line(n: int, slope: float, intercept: float = 0.0, dx: float = 1.0) -> list[tuple[float, float]]:
    return [(i * dx, intercept + slope * i * dx) for i in range(n)]


def working_set(sample: Sample) -> int | None:
    return sample.working_set_bytes


def test_exact_slope_and_intercept_on_a_line() -> None:
    trend = fit(line(20, slope=2.5, intercept=3.0, dx=0.5))
    assert trend == Trend(slope_per_s=2.5, intercept=3.0, n=20, span_s=9.5, r_noise=0.0)
    assert trend.at(10.0) == pytest.approx(28.0)
    assert trend.rise == pytest.approx(23.75)


def test_points_in_any_order_give_the_same_slope() -> None:
    points = line(30, slope=-4.0, intercept=100.0)
    shuffled = points[:]
    random.Random(3).shuffle(shuffled)
    assert theil_sen(shuffled) == pytest.approx(-4.0)


def test_robust_to_twenty_percent_outliers() -> None:
    points = line(50, slope=5.0, intercept=1000.0)
    spiked = [(x, y + 10_000.0) if i % 5 == 0 else (x, y) for i, (x, y) in enumerate(points)]
    trend = fit(spiked)
    assert trend is not None
    assert trend.slope_per_s == pytest.approx(5.0, rel=0.05)
    assert trend.intercept == pytest.approx(1000.0, abs=25.0)
    # least squares would be dragged by the spikes; the median residual is not
    assert trend.r_noise < 5.0


def test_noise_averages_out() -> None:
    rng = random.Random(1)
    points = [(x, 1e6 + 1000.0 * x + rng.gauss(0.0, 2000.0)) for x, _ in line(200, 0.0, dx=0.1)]
    trend = fit(points)
    assert trend is not None
    assert trend.slope_per_s == pytest.approx(1000.0, rel=0.15)
    assert 800.0 < trend.r_noise < 2000.0  # median |gaussian| is 0.67 sigma


@pytest.mark.parametrize(
    "points",
    [[], [(1.0, 5.0)], [(1.0, 5.0), (1.0, 9.0)], [(2.0, 1.0), (2.0, 2.0), (2.0, 3.0)]],
    ids=["empty", "one", "same-x-pair", "same-x-triple"],
)
def test_too_few_distinct_x_has_no_slope(points: list[tuple[float, float]]) -> None:
    assert theil_sen(points) is None
    assert fit(points) is None
    assert not is_plateau(points, rel_tolerance=0.1)


def test_repeated_x_values_are_skipped_not_fatal() -> None:
    points = [(0.0, 0.0), (0.0, 50.0), (1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]
    assert theil_sen(points) == pytest.approx(2.0)


def test_subsampling_keeps_the_slope_on_5000_points() -> None:
    rng = random.Random(7)
    points = [(x, 3.0 * x + rng.gauss(0.0, 50.0)) for x, _ in line(5000, 0.0, dx=0.05)]
    for i in range(0, 5000, 7):  # and ~14% wild outliers
        points[i] = (points[i][0], points[i][1] + 1e6)
    slope = theil_sen(points)
    assert slope == pytest.approx(3.0, rel=0.02)
    assert theil_sen(points) == slope  # deterministic: the same pairs on every call


def test_subsample_agrees_with_all_pairs() -> None:
    rng = random.Random(11)
    points = [(x, -7.0 * x + rng.gauss(0.0, 20.0)) for x, _ in line(300, 0.0, dx=0.1)]
    everything = theil_sen(points, max_pairs=300 * 299 // 2)
    assert everything is not None
    assert theil_sen(points) == pytest.approx(everything, rel=0.02)
    assert theil_sen(points, max_pairs=50) == pytest.approx(everything, rel=0.1)


def test_subsample_with_mostly_repeated_x_falls_back_to_the_extremes() -> None:
    points = [(0.0, float(i)) for i in range(200)] + [(10.0, 1000.0)]
    slope = theil_sen(points, max_pairs=1)
    assert slope is not None
    assert slope > 0


def test_seconds_to_reach() -> None:
    assert seconds_to_reach(100.0, 40.0, 3.0) == pytest.approx(20.0)
    assert seconds_to_reach(100.0, 40.0, 0.0) is None
    assert seconds_to_reach(100.0, 40.0, -1.0) is None
    assert seconds_to_reach(100.0, 100.0, -1.0) == 0.0
    assert seconds_to_reach(100.0, 120.0, 5.0) == 0.0


def test_window_keeps_the_last_seconds_oldest_first() -> None:
    samples = [make_sample(float(t), usage=(100 + t) * MiB) for t in range(30)]
    points = window(samples, 5.0, working_set)
    assert [x for x, _ in points] == [24.0, 25.0, 26.0, 27.0, 28.0, 29.0]
    assert points[-1] == (29.0, float(119 * MiB))


def test_window_skips_missing_values() -> None:
    samples = [make_sample(float(t), usage=(100 + t) * MiB) for t in range(10)]
    points = window(samples, 60.0, lambda s: None if s.monotonic % 2 else s.working_set_bytes)
    assert [x for x, _ in points] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert window([], 10.0, working_set) == []


def test_pid_restart_starts_a_new_series() -> None:
    old = [make_sample(float(t), usage=(100 + 10 * t) * MiB, pid=100) for t in range(10)]
    new = [make_sample(float(t), usage=60 * MiB, pid=200) for t in range(10, 15)]
    points = window(old + new, 60.0, working_set)
    assert [x for x, _ in points] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert theil_sen(points) == 0.0
    # without the split the old process's growth would show
    assert (theil_sen(window(old, 60.0, working_set)) or 0.0) > 0


def test_plateau_detection() -> None:
    rng = random.Random(5)
    flat = [(x, 200 * MiB + rng.gauss(0.0, MiB)) for x, _ in line(120, 0.0)]
    rising = [(x, 200 * MiB + 0.5 * MiB * x) for x, _ in line(120, 0.0)]
    assert is_plateau(flat, rel_tolerance=0.02)
    assert not is_plateau(rising, rel_tolerance=0.02)
    assert is_plateau(rising, rel_tolerance=0.5)  # +60 MiB on 230 MiB is within 50%
    assert is_plateau([(0.0, 0.0), (1.0, 0.0)], rel_tolerance=0.0)


def test_split_slope_sees_levels_not_teeth() -> None:
    assert split_slope(line(10, slope=3.0, intercept=1.0)) == pytest.approx(3.0)
    sawtooth = [(x, (x % 3.0) / 3.0) for x, _ in line(19, 0.0, dx=0.25)]  # 4.5 s: a tooth and a half
    assert theil_sen(sawtooth) == pytest.approx(1 / 3)  # Theil-Sen follows the teeth
    assert split_slope(sawtooth) == pytest.approx(0.0)
    assert split_slope([(0.0, 1.0)]) is None
    assert split_slope([(1.0, 1.0), (1.0, 2.0)]) is None
