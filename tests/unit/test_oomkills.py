"""Worker OOM kills: the counter rises, a pid is gone; recorded once on the volume."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from oomguard.cgroup import MemoryEvents
from oomguard.oomkills import KILLS_FILE, KillWatch, read_kills
from oomguard.sample import Sample
from tests.support.samples import make_sample

MiB = 1024 * 1024


def with_kills(sample: Sample, count: int) -> Sample:
    assert sample.cgroup is not None
    cgroup = dataclasses.replace(sample.cgroup, events=MemoryEvents(0, 0, count, count))
    return dataclasses.replace(sample, cgroup=cgroup)


def anon(pid: int) -> int:
    return pid * MiB


def test_a_worker_kill_is_recorded_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "oomguard")
    first = KillWatch(tmp_path, evidence=lambda pids: [f"bundle-of-{p}" for p in pids])
    second = KillWatch(tmp_path)
    for watch in (first, second):
        assert watch.observe(with_kills(make_sample(0), 3), frozenset({10, 20, 30}), anon) is None
    after = with_kills(make_sample(1), 4)
    kill = first.observe(after, frozenset({10, 20, 31}), anon)
    assert kill is not None
    assert (kill.pids, kill.kills, kill.oom_kill) == ((30,), 1, 4)
    assert kill.anon_bytes == (30 * MiB,)
    assert kill.evidence == ("bundle-of-30",)
    again = second.observe(after, frozenset({10, 20, 31}), anon)
    assert again is not None
    assert again.pids == (30,)
    logged = [r.getMessage() for r in caplog.records if "OOM-killed" in r.getMessage()]
    assert len(logged) == 1
    assert "pid 30" in logged[0]
    records = read_kills(tmp_path)
    assert len(records) == 1
    assert records[0]["pids"] == [30]
    assert (tmp_path / KILLS_FILE).stat().st_mode & 0o777 == 0o600
    assert first.kills[-1] == kill


def test_kills_before_the_agent_started_are_not_reported(tmp_path: Path) -> None:
    watch = KillWatch(tmp_path)
    assert watch.observe(with_kills(make_sample(0), 7), frozenset({1}), anon) is None
    assert watch.observe(with_kills(make_sample(1), 7), frozenset({1}), anon) is None
    assert not (tmp_path / KILLS_FILE).exists()


def test_no_volume_still_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "oomguard")
    blocked = tmp_path / "file"
    blocked.write_text("")
    watch = KillWatch(blocked / "dumps")
    watch.observe(with_kills(make_sample(0), 0), frozenset({1, 2}), anon)
    assert watch.observe(with_kills(make_sample(1), 1), frozenset({1}), anon) is not None
    assert any("OOM-killed pid 2" in r.getMessage() for r in caplog.records)


def test_the_victim_may_leave_the_cgroup_after_the_counter_rose(tmp_path: Path) -> None:
    watch = KillWatch(tmp_path)
    watch.observe(with_kills(make_sample(0.0), 0), frozenset({1, 2, 3}), anon)
    # The kernel counted the kill; the victim (pid 3) is still exiting.
    assert watch.observe(with_kills(make_sample(0.1), 1), frozenset({1, 2, 3}), anon) is None
    kill = watch.observe(with_kills(make_sample(0.2), 1), frozenset({1, 2, 4}), anon)
    assert kill is not None
    assert kill.pids == (3,)
    assert kill.kills == 1


def test_a_kill_whose_victim_never_left_is_reported_after_settling(tmp_path: Path) -> None:
    watch = KillWatch(tmp_path)
    watch.observe(with_kills(make_sample(0.0), 0), frozenset({1}), anon)
    assert watch.observe(with_kills(make_sample(1.0), 2), frozenset({1}), anon) is None
    kill = watch.observe(with_kills(make_sample(1.0 + KillWatch.SETTLE_S), 2), frozenset({1}), anon)
    assert kill is not None
    assert (kill.pids, kill.kills) == ((), 2)
