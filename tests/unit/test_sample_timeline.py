from __future__ import annotations

import logging

import pytest

from oomguard.cgroup import HostMemory
from oomguard.sample import Sample
from oomguard.sampler import Sampler
from oomguard.timeline import Timeline
from tests.support.samples import MiB, make_sample


def test_limit_is_the_cgroups_when_set() -> None:
    sample = make_sample(usage=128 * MiB, inactive_file=28 * MiB)
    assert sample.limit_bytes == 256 * MiB
    assert not sample.limit_from_host
    assert sample.working_set_bytes == 100 * MiB
    assert sample.headroom_bytes == 156 * MiB
    assert sample.pressure == pytest.approx(100 / 256)


def test_unlimited_cgroup_falls_back_to_host_ram() -> None:
    sample = make_sample(limit=None, host_total=4096 * MiB)
    assert sample.limit_bytes == 4096 * MiB
    assert sample.limit_from_host


def test_limit_above_host_ram_means_host() -> None:
    sample = make_sample(limit=64 * 1024 * MiB, host_total=4096 * MiB)
    assert sample.limit_bytes == 4096 * MiB
    assert sample.limit_from_host


def test_no_cgroup_uses_host_usage() -> None:
    base = make_sample()
    sample = Sample(base.time, base.monotonic, base.pid, None, HostMemory(1000, 400), base.process, None)
    assert (sample.limit_bytes, sample.usage_bytes, sample.working_set_bytes) == (1000, 600, 600)
    assert sample.limit_from_host


def test_timeline_is_bounded_and_ordered() -> None:
    timeline = Timeline(10)
    for t in range(25):
        timeline.append(make_sample(float(t)))
    samples = timeline.snapshot()
    assert len(samples) == len(timeline) == 10
    assert [s.monotonic for s in samples] == [float(t) for t in range(15, 25)]
    latest = timeline.latest()
    assert latest is not None
    assert latest.monotonic == 24.0


class FlakySource:
    def __init__(self) -> None:
        self.calls = 0

    def take(self) -> Sample:
        self.calls += 1
        if self.calls % 2:
            raise OSError("kernel said no")
        return make_sample(float(self.calls))


def test_sampler_survives_source_and_callback_errors_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[float] = []

    def broken(sample: Sample) -> None:
        raise ValueError("callback bug")

    timeline = Timeline(100)
    sampler = Sampler(FlakySource(), timeline, 1.0, on_sample=[broken, lambda s: seen.append(s.monotonic)])
    with caplog.at_level(logging.ERROR, logger="oomguard"):
        results = [sampler.sample_once() for _ in range(6)]
    assert [r is not None for r in results] == [False, True] * 3
    assert len(timeline) == 3
    assert seen == [2.0, 4.0, 6.0]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("kernel said no" in m for m in messages) == 1
    assert sum("callback bug" in m for m in messages) == 1
