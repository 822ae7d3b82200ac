"""The verdict over synthetic timelines: each kind, and the shapes that must not fool it."""

from __future__ import annotations

import math
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from oomguard.diagnosis import (
    Kind,
    Verdict,
    diagnose,
    growth_suspected,
    postmortem_verdict,
    snapshot_verdict,
    verdict_document,
)
from oomguard.diagnostician import Diagnostician
from oomguard.heap.suspects import Suspect
from oomguard.heap.windows import HeapEvidence, HeapWindows, WindowPolicy, WindowResult, rank_suspects
from oomguard.sample import Sample
from oomguard.timeline import Timeline
from tests.support.samples import MiB, make_sample

LEAK_WHERE = "app/cache.py:42"


def series(
    seconds: float, shape: Callable[[float], dict[str, float]], *, dt: float = 1.0, t0: float = 0.0, pid: int = 100
) -> list[Sample]:
    """Samples every ``dt`` seconds; ``shape(t)`` gives anon/file/threads/… at time t (MiB for bytes)."""
    samples = []
    for i in range(int(seconds / dt) + 1):
        t = t0 + i * dt
        values = {"anon": 80.0, "file": 20.0, "threads": 4.0} | shape(t)
        anon, file = int(values["anon"] * MiB), int(values["file"] * MiB)
        traced = values.get("traced")
        requests = values.get("requests")
        samples.append(
            make_sample(
                t,
                usage=anon + file,
                anon=anon,
                file=file,
                inactive_file=int(values.get("inactive", 0.5 * values["file"]) * MiB),
                rss=anon + 10 * MiB,
                threads=int(values["threads"]),
                pid=pid,
                traced=int(traced * MiB) if traced is not None else None,
                requests_total=int(requests) if requests is not None else None,
                limit=int(values.get("limit", 1024) * MiB),
            )
        )
    return samples


def heap_window(started: float, anon_mib: float, python_mib: float, sites: tuple[Suspect, ...] = ()) -> WindowResult:
    """A window that saw the process's anon grow ``anon_mib`` and Python objects ``python_mib`` of it (4 KiB blocks)."""
    blocks = max(1, int(python_mib * MiB / 4096))
    return WindowResult(
        started=started,
        seconds=4.0,
        traced_bytes=int(max(python_mib, 0.5) * MiB),
        traced_blocks=blocks,
        net_blocks=blocks if python_mib > 0 else 0,
        anon_growth_bytes=int(anon_mib * MiB),
        sites=sites,
        stopped="time",
    )


def leaking(rate_mib_s: float) -> Callable[[float], dict[str, float]]:
    return lambda t: {"anon": 80.0 + rate_mib_s * t}


def test_no_samples_and_too_few_samples_are_insufficient_data() -> None:
    assert diagnose(()).kind is Kind.INSUFFICIENT_DATA
    verdict = diagnose(series(8, leaking(5.0)))
    assert verdict.kind is Kind.INSUFFICIENT_DATA
    assert verdict.confidence == 0.0
    assert verdict.samples == 9
    assert "9 samples over 8 s" in verdict.evidence[0]


def test_noise_around_a_flat_level_is_healthy() -> None:
    rng = random.Random(5)
    verdict = diagnose(series(180, lambda t: {"anon": 200 + rng.gauss(0, 3), "file": 40 + rng.gauss(0, 1)}))
    assert verdict.kind is Kind.HEALTHY
    assert "no sustained growth" in verdict.evidence[0]
    assert "MiB/min" in verdict.evidence[0]


def test_gc_sawtooth_is_healthy() -> None:
    # 30 MiB of garbage builds up over 15 s, then a collection frees it, again and again.
    verdict = diagnose(series(180, lambda t: {"anon": 150 + 2.0 * (t % 15)}, dt=0.5))
    assert verdict.kind is Kind.HEALTHY


@pytest.mark.parametrize("step_at", [30.0, 60.0, 100.0])
def test_a_step_then_flat_is_not_a_leak(step_at: float) -> None:
    samples = series(120, lambda t: {"anon": 100.0 + (80.0 if t >= step_at else 0.0)})
    heap = HeapEvidence((heap_window(step_at - 1, 60.0, 58.0),))
    assert diagnose(samples, heap).kind is Kind.HEALTHY


def test_a_cache_warming_up_then_flat_is_healthy() -> None:
    samples = series(60, lambda t: {"anon": 60.0 + 3.0 * min(t, 15.0)})
    heap = HeapEvidence((heap_window(5, 12.0, 11.5),))
    assert diagnose(samples, heap).kind is Kind.HEALTHY


def test_python_heap_leak_with_windows_names_the_suspect() -> None:
    sites = (Suspect(LEAK_WHERE, 7 * MiB, 1700, 7 * MiB), Suspect("app/views.py:10", MiB // 4, 90, MiB // 4))
    heap = HeapEvidence((heap_window(12, 8.0, 7.6, sites),), suspects=sites)
    verdict = diagnose(series(60, leaking(2.0)), heap)
    assert verdict.kind is Kind.PYTHON_HEAP_LEAK
    assert verdict.suspects[0].where == LEAK_WHERE
    assert 0.5 < verdict.confidence <= 1.0
    assert "anon +120.0 MiB/min over 60 s" in verdict.evidence[0]
    assert any("Python objects 7.6 MiB (95%)" in e for e in verdict.evidence)
    assert any(LEAK_WHERE in e for e in verdict.evidence)


def test_native_leak_when_python_explains_none_of_the_growth() -> None:
    heap = HeapEvidence((heap_window(12, 8.0, 0.0), heap_window(40, 8.0, 0.1)))
    verdict = diagnose(series(60, leaking(2.0)), heap)
    assert verdict.kind is Kind.NATIVE_LEAK
    assert verdict.suspects == ()
    assert any("RSS − Python gap +" in e for e in verdict.evidence)


def test_churn_allocations_do_not_make_native_growth_python() -> None:
    # The window saw lots of new live objects (a cache replacing entries) but no net new blocks.
    churn = WindowResult(12.0, 4.0, 30 * MiB, 7000, 0, 8 * MiB, (), "time")
    verdict = diagnose(series(60, leaking(2.0)), HeapEvidence((churn,)))
    assert verdict.kind is Kind.NATIVE_LEAK


def test_growth_without_attribution_yet_is_insufficient_data() -> None:
    verdict = diagnose(series(60, leaking(2.0)), HeapEvidence(active=True))
    assert verdict.kind is Kind.INSUFFICIENT_DATA
    assert "not yet attributed" in verdict.summary
    assert "heap window is sampling now" in verdict.summary


def test_a_leak_needs_thirty_seconds_of_growth() -> None:
    heap = HeapEvidence((heap_window(5, 8.0, 8.0),))
    verdict = diagnose(series(24, leaking(2.0)), heap)
    assert verdict.kind is Kind.INSUFFICIENT_DATA
    assert "needs 30 s" in verdict.summary


def test_the_applications_own_tracemalloc_series_attributes_growth() -> None:
    python = diagnose(series(60, lambda t: {"anon": 80 + 2 * t, "traced": 10 + 1.8 * t}))
    native = diagnose(series(60, lambda t: {"anon": 80 + 2 * t, "traced": 10.0}))
    assert python.kind is Kind.PYTHON_HEAP_LEAK
    assert any("Python-traced" in e for e in python.evidence)
    assert native.kind is Kind.NATIVE_LEAK


def test_a_slow_leak_shows_at_a_longer_scale() -> None:
    # 12 MiB per 10 min: under the floor over 2 min, plain over 30 min.
    samples = series(1800, lambda t: {"anon": 100 + t * 0.02}, dt=2.0)
    heap = HeapEvidence((heap_window(1700, 2.0, 1.9),))
    verdict = diagnose(samples, heap)
    assert verdict.kind is Kind.PYTHON_HEAP_LEAK
    assert "MiB/h" in verdict.evidence[0]


def test_restart_mid_timeline_only_the_new_process_counts() -> None:
    old = series(120, leaking(2.0), pid=100)
    heap = HeapEvidence((heap_window(50, 8.0, 8.0),))
    assert diagnose(old, heap).kind is Kind.PYTHON_HEAP_LEAK
    fresh = series(5, lambda t: {"anon": 60.0}, t0=121, pid=200)
    assert diagnose(old + fresh, heap).kind is Kind.INSUFFICIENT_DATA
    settled = series(60, lambda t: {"anon": 60.0}, t0=121, pid=200)
    assert diagnose(old + settled, heap).kind is Kind.HEALTHY


def test_page_cache_growth_is_not_a_leak() -> None:
    verdict = diagnose(series(60, lambda t: {"file": 20 + 4 * t}))
    assert verdict.kind is Kind.PAGE_CACHE_GROWTH
    assert "file (page cache) +240.0 MiB/min" in verdict.evidence[0]
    assert "anon +0.0 MiB/min" in verdict.evidence[0]


def test_page_cache_full_at_the_limit_after_growing() -> None:
    # Filled in 50 s, then reclaimed at the limit: it still dominates usage.
    verdict = diagnose(series(90, lambda t: {"file": 20 + 4 * min(t, 50.0), "limit": 512}))
    assert verdict.kind is Kind.PAGE_CACHE_GROWTH


def test_thread_leak() -> None:
    verdict = diagnose(series(60, lambda t: {"threads": 4 + 4 * t, "anon": 80 + 1.0 * t}))
    assert verdict.kind is Kind.THREAD_LEAK
    assert "(+240.0/min, sustained)" in verdict.evidence[0]
    assert "KiB per thread" in verdict.evidence[1]


def test_a_thread_pool_filling_up_is_not_a_thread_leak() -> None:
    verdict = diagnose(series(60, lambda t: {"threads": 4 + min(t, 8.0) * 2, "anon": 80 + 0.5 * min(t, 8.0)}))
    assert verdict.kind is Kind.HEALTHY


def test_limit_too_low_when_the_working_set_plateaus_near_the_limit() -> None:
    rng = random.Random(2)
    verdict = diagnose(series(60, lambda t: {"anon": 235 + rng.gauss(0, 0.5), "file": 4, "limit": 256}))
    assert verdict.kind is Kind.LIMIT_TOO_LOW
    assert "below the 256.0 MiB limit" in verdict.evidence[0]


def test_a_plateau_with_room_to_spare_is_healthy() -> None:
    verdict = diagnose(series(60, lambda t: {"anon": 180, "file": 4, "limit": 256}))
    assert verdict.kind is Kind.HEALTHY


def test_a_leak_approaching_the_limit_is_a_leak_not_a_low_limit() -> None:
    heap = HeapEvidence((heap_window(10, 8.0, 7.9),))
    verdict = diagnose(series(40, lambda t: {"anon": 200 + 1.0 * t, "file": 4, "limit": 256}), heap)
    assert verdict.kind is Kind.PYTHON_HEAP_LEAK


def test_traffic_is_cited_and_normalises_growth() -> None:
    heap = HeapEvidence((heap_window(10, 8.0, 7.9),))
    verdict = diagnose(series(60, lambda t: {"anon": 80 + 2 * t, "requests": 85 * t}), heap)
    assert verdict.kind is Kind.PYTHON_HEAP_LEAK
    assert "flat traffic at 85.0 req/s" in verdict.evidence[0]
    assert "24.1 KiB retained per request" in verdict.evidence[1]


def test_growth_suspected_is_cheap_early_warning() -> None:
    assert growth_suspected(series(12, leaking(1.0)))
    assert not growth_suspected(series(12, lambda t: {"anon": 80 + 0.1 * math.sin(t)}))
    assert not growth_suspected(series(2, leaking(10.0)))


def test_verdict_document_has_the_manifest_fields() -> None:
    verdict = Verdict(Kind.NATIVE_LEAK, 0.8123, "native", ("a", "b"), (Suspect("x.py:1", 10, 1, 10),), 30)
    assert verdict_document(verdict) == {
        "kind": "native_leak",
        "confidence": 0.81,
        "summary": "native",
        "evidence": ["a", "b"],
        "suspects": [{"where": "x.py:1", "size_bytes": 10, "count": 1, "growth_bytes": 10}],
        "samples": 30,
    }


def test_snapshot_verdict_is_honest_about_one_sample() -> None:
    verdict = snapshot_verdict(make_sample(usage=200 * MiB, inactive_file=0))
    assert verdict.kind is Kind.INSUFFICIENT_DATA
    assert any("78% of the 256.0 MiB limit" in e for e in verdict.evidence)


def test_postmortem_carries_the_verdict_from_the_armed_note() -> None:
    note = {
        "reason": "working set 80% of the limit",
        "verdict": {"kind": "python_heap_leak", "confidence": 0.8, "summary": "Python heap leak", "evidence": ["x"]},
    }
    suspects = [Suspect(LEAK_WHERE, 50 * MiB, 100, 50 * MiB)]
    verdict = postmortem_verdict(note, oom_confirmed=True, suspects=suspects)
    assert verdict.kind is Kind.PYTHON_HEAP_LEAK
    assert verdict.confidence == pytest.approx(0.85)
    assert verdict.summary.startswith("the last process was OOM-killed")
    assert verdict.suspects[0].where == LEAK_WHERE
    assert "before the kill: x" in verdict.evidence


@pytest.mark.parametrize("note", [None, "garbage", {"verdict": {"kind": "healthy"}}, {"verdict": {"kind": "nonsense"}}])
def test_postmortem_without_a_verdict_before_the_kill(note: object) -> None:
    verdict = postmortem_verdict(note, oom_confirmed=None, suspects=[], capture_error="truncated")
    assert verdict.kind is Kind.INSUFFICIENT_DATA
    assert "no verdict had been reached" in verdict.summary
    assert "the capture is unreadable: truncated" in verdict.evidence


# -- heap windows (in-process tracemalloc, fake clock) ------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


retained: list[bytearray] = []


def retain(n: int) -> None:
    retained.extend(bytearray(4000) for _ in range(n))  # RETAIN-LINE


def test_a_window_finds_the_line_that_keeps_memory_and_respects_its_duty_cycle() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already on in this interpreter")
    clock, anon = FakeClock(), iter([100 * MiB, 106 * MiB, 106 * MiB])
    windows = HeapWindows(WindowPolicy(seconds=4, duty=0.1), clock=clock, anon=lambda: next(anon))
    assert windows.open()
    retain(1000)
    assert windows.poll() is None
    clock.now += 4
    result = windows.poll()
    retained.clear()
    assert result is not None
    assert not tracemalloc.is_tracing()
    assert result.sites[0].where.endswith(f"test_diagnosis.py:{RETAIN_LINE}")
    assert result.sites[0].size_bytes >= 4_000_000
    assert result.net_blocks >= 1000
    assert 3_500_000 < result.python_growth_bytes <= result.traced_bytes
    assert result.anon_growth_bytes is not None
    assert result.anon_growth_bytes < 6 * MiB
    assert not windows.ready()  # the pause after a 4 s window at 10% duty is 36 s
    clock.now += 35
    assert not windows.ready()
    clock.now += 1
    assert windows.ready()
    assert windows.evidence().suspects[0].where == result.sites[0].where


def test_a_window_stays_open_until_the_process_grew() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already on in this interpreter")
    clock, anon = FakeClock(), [100 * MiB]
    windows = HeapWindows(WindowPolicy(seconds=4, max_seconds=10), clock=clock, anon=lambda: anon[0])
    assert windows.open()
    clock.now += 5
    assert windows.poll() is None  # no growth yet: a slowed-down leak needs longer
    anon[0] += 8 * MiB
    clock.now += 1
    result = windows.poll()
    assert result is not None
    assert result.seconds == pytest.approx(6.0)
    assert windows.open() is False  # the pause is measured from the real length
    clock.now += 6 * 19
    assert windows.open()
    clock.now += 10
    assert windows.poll() is not None  # never longer than max_seconds


def test_a_window_over_its_budget_stops_early_without_a_snapshot() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already on in this interpreter")
    windows = HeapWindows(budget=lambda: 1024, clock=FakeClock(), anon=lambda: None)
    assert windows.open()
    retain(100)
    result = windows.poll()
    retained.clear()
    assert result is not None
    assert result.stopped == "budget"
    assert result.sites == ()
    assert result.anon_growth_bytes is None


def test_windows_stand_aside_when_the_application_traces() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already on in this interpreter")
    tracemalloc.start()
    try:
        windows = HeapWindows(clock=FakeClock(), anon=lambda: None)
        assert not windows.open()
        assert windows.evidence().unavailable is not None
    finally:
        tracemalloc.stop()


def test_repeated_windows_rank_suspects() -> None:
    steady = Suspect("app/leak.py:1", MiB, 10, MiB)
    burst = Suspect("app/batch.py:9", 5 * MiB, 10, 5 * MiB)
    windows = [
        heap_window(0, 2, 2, (steady,)),
        heap_window(40, 6, 6, (burst, steady)),
        heap_window(80, 2, 2, (steady,)),
    ]
    ranked = rank_suspects(windows)
    assert [s.where for s in ranked] == ["app/leak.py:1", "app/batch.py:9"]
    assert ranked[0].size_bytes == 3 * MiB
    assert ranked[0].count == 30


def test_the_diagnostician_runs_every_few_seconds_and_reports_changes() -> None:
    timeline = Timeline(600)
    diagnostician = Diagnostician(timeline, every=2.0)
    seen: list[Kind] = []
    diagnostician.subscribe(lambda v: seen.append(v.kind))
    for sample in series(60, lambda t: {"anon": 200.0}):
        timeline.append(sample)
        diagnostician.on_sample(sample)
    assert diagnostician.verdict().kind is Kind.HEALTHY
    assert seen == [Kind.HEALTHY]
    assert diagnostician.runs == 31


RETAIN_LINE = next(
    n for n, line in enumerate(Path(__file__).read_text(encoding="utf-8").splitlines(), 1) if "# RETAIN-LINE" in line
)
