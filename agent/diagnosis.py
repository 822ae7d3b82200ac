"""The verdict (SPEC §7): what kind of memory is growing, with the numbers behind it.

Pure: the timeline and the heap windows' evidence go in, a :class:`Verdict`
comes out. The rules, in order:

1. **insufficient_data** — fewer than :data:`MIN_SAMPLES` samples of the
   current process, or less than :data:`MIN_SPAN_S` seconds of them.
2. **thread_leak** — the thread count climbs in a *sustained* way (see below)
   while memory rises with it.
3. **python_heap_leak / native_leak** — anonymous memory (the cgroup's, else
   the process's) climbs in a sustained way over at least :data:`LEAK_SPAN_S`.
   Heap windows then say which part is Python: net Python growth over the
   process's anon growth in the same windows (or the app's own tracemalloc
   series). From the midpoint of :data:`NATIVE_SHARE` and :data:`PYTHON_SHARE`
   (40%) up → Python, below → native; confidence falls as the share nears
   that midpoint. No window yet → insufficient_data ("attributing").
4. **limit_too_low** — the working set is flat over the last
   :data:`PLATEAU_S` seconds within :data:`NEAR_LIMIT` of the limit.
5. **page_cache_growth** — the page cache (``file``) climbs in a sustained way,
   or filled most of the usage while rising, with anon flat.
6. **healthy** — none of the above: slopes near zero.

*Sustained* growth is what separates a leak from a cache warming up, a step
or a GC sawtooth: over the analysis window the Theil-Sen rise must be large
(:data:`MIN_RISE_BYTES` and :data:`NOISE_K` times the line's own noise), the
two-halves median slope must agree with it, the recent half must still climb
(at least :data:`RECENT_SHARE` of the overall slope) and at least two of the
three steps between the medians of the window's quarters must climb. Windows
of 2, 10 and 30 minutes are tried, shortest first, so a slow leak shows up
once enough of it has been seen. Traffic (``requests_total``), when an
integration provides it, is reported and normalises growth per request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise
from statistics import median

from .heap.suspects import Suspect
from .heap.windows import HeapEvidence
from .sample import Sample
from .trend import Point, fit, is_plateau, split_slope, window

__all__ = [
    "Kind",
    "Verdict",
    "diagnose",
    "growth_suspected",
    "postmortem_verdict",
    "snapshot_verdict",
    "verdict_document",
]

_MiB = 1024 * 1024

MIN_SAMPLES = 10
MIN_SPAN_S = 20.0
LEAK_SPAN_S = 30.0
"""A leak is called only after this much sustained growth: a cache warming for 10-20 s is not one."""
SCALES_S = (120.0, 600.0, 1800.0)
MIN_RISE_BYTES = 8 * _MiB
MIN_RISE_FRACTION = 0.02
"""…and at least this fraction of the limit (or of the level when there is no limit)."""
NOISE_K = 4.0
RECENT_SHARE = 0.35
MIN_THREAD_RISE = 5
PYTHON_SHARE = 0.5
NATIVE_SHARE = 0.3
MIN_WINDOW_GROWTH = 512 * 1024
"""A heap window whose anon grew less than this says nothing about attribution."""
NEAR_LIMIT = 0.88
PLATEAU_S = 20.0
PLATEAU_TOLERANCE = 0.03
CACHE_SHARE = 0.5


class Kind(str, Enum):
    """The verdict kinds of SPEC §7."""

    HEALTHY = "healthy"
    PYTHON_HEAP_LEAK = "python_heap_leak"
    NATIVE_LEAK = "native_leak"
    PAGE_CACHE_GROWTH = "page_cache_growth"
    THREAD_LEAK = "thread_leak"
    LIMIT_TOO_LOW = "limit_too_low"
    INSUFFICIENT_DATA = "insufficient_data"


LEAKS = frozenset({Kind.PYTHON_HEAP_LEAK, Kind.NATIVE_LEAK, Kind.THREAD_LEAK})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the memory is doing, and why oomguard thinks so."""

    kind: Kind
    confidence: float
    """0-1: how much evidence backs the kind (0 for insufficient_data)."""
    summary: str
    """One line for on-call."""
    evidence: tuple[str, ...]
    """Sentences with the numbers."""
    suspects: tuple[Suspect, ...] = ()
    """Allocation sites of the growth (Python leaks), best first."""
    samples: int = 0
    """Samples the verdict was drawn from."""


def verdict_document(verdict: Verdict) -> dict[str, object]:
    """The ``verdict`` object of the status document and manifests (SPEC §6)."""
    return {
        "kind": verdict.kind.value,
        "confidence": round(verdict.confidence, 2),
        "summary": verdict.summary,
        "evidence": list(verdict.evidence),
        "suspects": [
            {"where": s.where, "size_bytes": s.size_bytes, "count": s.count, "growth_bytes": s.growth_bytes}
            for s in verdict.suspects
        ],
        "samples": verdict.samples,
    }


# -- series and their trends --------------------------------------------------------


def _anon(s: Sample) -> int | None:
    if s.cgroup is not None and s.cgroup.anon_bytes is not None:
        return s.cgroup.anon_bytes
    return s.process.anon_bytes


def _file(s: Sample) -> int | None:
    return s.cgroup.file_bytes if s.cgroup is not None else None


def _proc_anon(s: Sample) -> int | None:
    return s.process.anon_bytes if s.process.anon_bytes is not None else s.process.rss_bytes


def _traced(s: Sample) -> int | None:
    return s.python.traced_bytes if s.python is not None else None


def _threads(s: Sample) -> int | None:
    return s.process.threads


def _requests(s: Sample) -> int | None:
    return s.requests_total


def _working_set(s: Sample) -> int | None:
    return s.working_set_bytes


@dataclass(frozen=True, slots=True)
class Growth:
    """One series over one window: how fast it moves and whether that is sustained growth."""

    slope_per_s: float
    rise: float
    span_s: float
    start: float
    """Median of the first quarter."""
    end: float
    """Median of the last quarter."""
    significant: bool
    sustained: bool


def analyse(points: Sequence[Point], min_rise: float) -> Growth | None:
    """The :class:`Growth` of a series (None with fewer than 8 points or no time span)."""
    if len(points) < 8:
        return None
    trend = fit(points, max_pairs=600)
    if trend is None or trend.span_s <= 0:
        return None
    quarter = len(points) // 4
    medians = [median(y for _, y in points[i * quarter : (i + 1) * quarter]) for i in range(3)]
    medians.append(median(y for _, y in points[3 * quarter :]))
    significant = trend.rise >= min_rise and trend.rise >= NOISE_K * trend.r_noise
    sustained = False
    if significant:
        halves = split_slope(points) or 0.0
        recent = fit(points[len(points) // 2 :], max_pairs=300)
        step = trend.rise / 4
        climbs = sum(1 for a, b in pairwise(medians) if b - a >= 0.25 * step)
        sustained = (
            halves >= 0.5 * trend.slope_per_s
            and recent is not None
            and recent.slope_per_s >= RECENT_SHARE * trend.slope_per_s
            and climbs >= 2
        )
    return Growth(trend.slope_per_s, trend.rise, trend.span_s, medians[0], medians[-1], significant, sustained)


def _growth_at_scales(
    samples: Sequence[Sample], value: Callable[[Sample], int | None], min_rise: float, min_span: float
) -> Growth | None:
    """Sustained growth at the shortest scale that shows it; else the shortest scale's figures."""
    first: Growth | None = None
    covered = 0.0
    for scale in SCALES_S:
        points = window(samples, scale, value)
        if len(points) < 2:
            return first
        span = points[-1][0] - points[0][0]
        if first is not None and span <= covered * 1.2:
            break  # the timeline holds no more than the shorter scale already saw
        covered = span
        growth = analyse(points, min_rise)
        if growth is None:
            continue
        if growth.sustained and growth.span_s >= min_span:
            return growth
        first = first or growth
    return first


# -- formatting -----------------------------------------------------------------------


def _mib(value: float) -> str:
    return f"{value / _MiB:.1f} MiB"


def _rate(per_s: float, span_s: float) -> str:
    if span_s >= 1800:
        return f"{per_s * 3600 / _MiB:+.1f} MiB/h"
    return f"{per_s * 60 / _MiB:+.1f} MiB/min"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _clamp(value: float) -> float:
    return max(0.0, min(0.97, value))


@dataclass(frozen=True, slots=True)
class _Traffic:
    rate: float | None
    """Requests per second over the window; None without an integration."""
    flat: bool | None
    """Is the rate steady (the two halves within 50%)? None when unknown."""

    def describe(self) -> str:
        if self.rate is None:
            return "traffic unknown (no integration reports requests)"
        if self.rate == 0:
            return "no requests served"
        shape = "flat" if self.flat else "changing"
        return f"{shape} traffic at {self.rate:.1f} req/s"


def _traffic(samples: Sequence[Sample], seconds: float) -> _Traffic:
    points = window(samples, seconds, _requests)
    if len(points) < 4:
        return _Traffic(None, None)
    span = points[-1][0] - points[0][0]
    if span <= 0:
        return _Traffic(None, None)
    rate = max(0.0, (points[-1][1] - points[0][1]) / span)
    half = len(points) // 2
    first, last = points[: half + 1], points[half:]

    def r(p: Sequence[Point]) -> float:
        return max(0.0, (p[-1][1] - p[0][1]) / max(p[-1][0] - p[0][0], 1e-9))

    a, b = r(first), r(last)
    flat = abs(a - b) <= 0.5 * max(a, b) if max(a, b) > 0 else True
    return _Traffic(rate, flat)


# -- the rules --------------------------------------------------------------------------


def _min_rise(sample: Sample, level: float) -> float:
    limit = sample.limit_bytes
    base = limit if limit else level
    return max(MIN_RISE_BYTES, MIN_RISE_FRACTION * base)


def _insufficient(n: int, span: float, why: str, evidence: Sequence[str] = ()) -> Verdict:
    return Verdict(
        Kind.INSUFFICIENT_DATA,
        0.0,
        why,
        (f"{n} sample{'' if n == 1 else 's'} over {span:.0f} s of this process", *evidence),
        (),
        n,
    )


def _python_share(
    samples: Sequence[Sample], heap: HeapEvidence, since: float
) -> tuple[float | None, float | None, list[str]]:
    """Python's share of the process's anon growth, the Python growth rate and the sentences behind them."""
    traced = window(samples, samples[-1].monotonic - since, _traced)
    proc = window(samples, samples[-1].monotonic - since, _proc_anon)
    if len(traced) >= 8 and len(proc) >= 8 and traced[0][0] <= proc[0][0] + 5:
        traced_trend, anon_trend = fit(traced, max_pairs=600), fit(proc, max_pairs=600)
        if traced_trend is not None and anon_trend is not None and anon_trend.slope_per_s > 0:
            share = max(0.0, traced_trend.slope_per_s) / anon_trend.slope_per_s
            return (
                share,
                traced_trend.slope_per_s,
                [f"Python-traced memory (the application's tracemalloc) {_rate(traced_trend.slope_per_s, 60)}"],
            )
    windows = [w for w in heap.windows if w.anon_growth_bytes is not None and w.anon_growth_bytes >= MIN_WINDOW_GROWTH]
    recent = [w for w in windows if w.started >= since] or windows[-3:]
    if not recent:
        return None, None, []
    python = sum(w.python_growth_bytes for w in recent)
    anon = sum(w.anon_growth_bytes or 0 for w in recent)
    seconds = sum(w.seconds for w in recent)
    share = python / anon if anon > 0 else 0.0
    sentence = (
        f"in {len(recent)} heap window{'s' if len(recent) > 1 else ''} ({seconds:.0f} s traced) the process's "
        f"anon grew {_mib(anon)}, of which Python objects {_mib(python)} ({100 * min(share, 1):.0f}%)"
    )
    return share, python / seconds if seconds > 0 else None, [sentence]


def _thread_leak(samples: Sequence[Sample], n: int) -> Verdict | None:
    threads = _growth_at_scales(samples, _threads, MIN_THREAD_RISE, LEAK_SPAN_S)
    if threads is None or not threads.sustained or threads.rise < 0.25 * max(threads.start, 1):
        return None
    memory = _growth_at_scales(samples, _anon, 0, 0)
    if memory is None or memory.slope_per_s <= 0:
        return None
    if threads.span_s < LEAK_SPAN_S:  # a thread pool filling up climbs too, then stops
        return _insufficient(
            n,
            threads.span_s,
            f"threads climb {threads.slope_per_s * 60:+.0f}/min: a thread-leak verdict needs {LEAK_SPAN_S:.0f} s of it",
        )
    per_thread = memory.slope_per_s / threads.slope_per_s
    span = threads.span_s
    confidence = 0.6 + 0.2 * min(1.0, span / 120) + 0.15 * min(1.0, threads.rise / (4 * MIN_THREAD_RISE))
    return Verdict(
        Kind.THREAD_LEAK,
        _clamp(confidence),
        f"threads climb {threads.slope_per_s * 60:+.0f}/min and memory with them: threads that never finish",
        (
            f"threads {threads.start:.0f} → {threads.end:.0f} over {_duration(span)} "
            f"({threads.slope_per_s * 60:+.1f}/min, sustained)",
            f"anon {_rate(memory.slope_per_s, span)} over the same time: about {per_thread / 1024:.0f} KiB per thread",
        ),
        (),
        n,
    )


def _leak(samples: Sequence[Sample], heap: HeapEvidence, n: int) -> Verdict | None:
    latest = samples[-1]
    level = float(_anon(latest) or 0)
    anon = _growth_at_scales(samples, _anon, _min_rise(latest, level), LEAK_SPAN_S)
    if anon is None or not anon.sustained:
        return None
    if anon.span_s < LEAK_SPAN_S:
        return _insufficient(
            n,
            anon.span_s,
            f"anon climbs {_rate(anon.slope_per_s, anon.span_s)}: a leak verdict needs {LEAK_SPAN_S:.0f} s of it",
        )
    since = latest.monotonic - anon.span_s
    traffic = _traffic(samples, anon.span_s)
    share, python_rate, attribution = _python_share(samples, heap, since)
    growth = (
        f"anon {_rate(anon.slope_per_s, anon.span_s)} over {_duration(anon.span_s)} "
        f"({_mib(anon.start)} → {_mib(anon.end)}) at {traffic.describe()}"
    )
    evidence = [growth]
    if traffic.rate:
        evidence.append(f"about {anon.slope_per_s / traffic.rate / 1024:.1f} KiB retained per request")
    if share is None:
        why = heap.unavailable or (
            "a heap window is sampling now" if heap.active else "a heap window will sample it shortly"
        )
        return _insufficient(
            n,
            anon.span_s,
            f"anon grows {_rate(anon.slope_per_s, anon.span_s)}; not yet attributed to Python or native code ({why})",
            evidence,
        )
    evidence += attribution
    traffic_factor = 1.0 if traffic.flat in (True, None) else 0.85
    span_factor = min(1.0, anon.span_s / 120)
    windows = len(heap.since(since)) or 1
    if share >= (PYTHON_SHARE + NATIVE_SHARE) / 2:
        suspects = heap.suspects
        where = ""
        if suspects:
            evidence.append(
                "top suspects (alive at the end of heap windows): "
                + "; ".join(f"{s.where} {_mib(s.size_bytes)} in {s.count} blocks" for s in suspects[:3])
            )
            where = f"; most of it allocated at {suspects[0].where}"
        clarity = min(1.0, (share - NATIVE_SHARE) / (1 - NATIVE_SHARE))
        confidence = (0.5 + 0.15 * span_factor + 0.1 * min(1.0, windows / 3) + 0.2 * clarity) * traffic_factor
        return Verdict(
            Kind.PYTHON_HEAP_LEAK,
            _clamp(confidence),
            f"Python heap leak: anon {_rate(anon.slope_per_s, anon.span_s)} and Python objects explain it{where}",
            tuple(evidence),
            suspects,
            n,
        )
    gap = anon.slope_per_s - max(0.0, python_rate or 0.0)
    evidence.append(f"RSS − Python gap {_rate(gap, anon.span_s)}: memory Python tracing does not see")
    clarity = min(1.0, (NATIVE_SHARE - min(share, NATIVE_SHARE)) / NATIVE_SHARE + 0.5)
    confidence = (0.5 + 0.15 * span_factor + 0.1 * min(1.0, windows / 3) + 0.15 * clarity) * traffic_factor
    return Verdict(
        Kind.NATIVE_LEAK,
        _clamp(confidence),
        f"native leak: anon {_rate(anon.slope_per_s, anon.span_s)}, Python objects explain "
        f"{100 * min(share, 1):.0f}% of it (C extensions, ctypes, malloc arenas)",
        tuple(evidence),
        (),
        n,
    )


def _limit_too_low(samples: Sequence[Sample], n: int) -> Verdict | None:
    latest = samples[-1]
    limit = latest.limit_bytes
    points = window(samples, PLATEAU_S, _working_set)
    if not limit or len(points) < 8 or points[-1][0] - points[0][0] < 0.75 * PLATEAU_S:
        return None
    level = float(median(y for _, y in points))
    if level < NEAR_LIMIT * limit or not is_plateau(points, rel_tolerance=PLATEAU_TOLERANCE):
        return None
    traffic = _traffic(samples, PLATEAU_S)
    headroom = 1 - level / limit
    confidence = 0.55 + 0.3 * min(1.0, (level / limit - NEAR_LIMIT) / (1 - NEAR_LIMIT) + 0.3)
    if traffic.rate:
        confidence += 0.1
    source = " (host RAM: no cgroup limit)" if latest.limit_from_host else ""
    return Verdict(
        Kind.LIMIT_TOO_LOW,
        _clamp(confidence),
        f"limit too low: the working set is flat at {100 * level / limit:.0f}% of the limit; "
        "it needs more memory, not a fix",
        (
            f"working set flat at {_mib(level)} over the last {PLATEAU_S:.0f} s, "
            f"{100 * headroom:.1f}% below the {_mib(limit)} limit{source}",
            f"served at {traffic.describe()}",
        ),
        (),
        n,
    )


def _page_cache(samples: Sequence[Sample], n: int) -> Verdict | None:
    latest = samples[-1]
    cg = latest.cgroup
    if cg is None or cg.file_bytes is None:
        return None
    file = _growth_at_scales(samples, _file, _min_rise(latest, float(cg.file_bytes)), MIN_SPAN_S)
    if file is None or not file.significant:
        return None
    usage = latest.usage_bytes or 0
    filling = usage > 0 and cg.file_bytes >= CACHE_SHARE * usage
    if not (file.sustained or filling):
        return None
    anon = _growth_at_scales(samples, _anon, 0, 0)
    anon_slope = anon.slope_per_s if anon is not None else 0.0
    if anon_slope > 0.25 * file.slope_per_s:
        return None
    inactive = cg.inactive_file_bytes
    evidence = [
        f"file (page cache) {_rate(file.slope_per_s, file.span_s)} over {_duration(file.span_s)} "
        f"({_mib(file.start)} → {_mib(file.end)}), anon {_rate(anon_slope, file.span_s)}",
        f"page cache is {100 * cg.file_bytes / usage:.0f}% of usage"
        + (f", {_mib(inactive)} of it inactive" if inactive is not None else "")
        + ": the kernel reclaims it at the limit",
    ]
    confidence = 0.6 + 0.25 * min(1.0, file.span_s / 120) + (0.1 if file.sustained else 0.0)
    return Verdict(
        Kind.PAGE_CACHE_GROWTH,
        _clamp(confidence),
        f"page cache grows {_rate(file.slope_per_s, file.span_s)} with anon flat: reclaimable, not a leak",
        tuple(evidence),
        (),
        n,
    )


def _healthy(samples: Sequence[Sample], n: int, span: float) -> Verdict:
    parts = []
    for name, value in (("anon", _anon), ("file", _file), ("working set", _working_set)):
        points = window(samples, SCALES_S[0], value)
        recent = fit(points[len(points) // 2 :], max_pairs=300) if len(points) >= 8 else None
        if recent is not None:
            parts.append(
                f"{name} {_mib(points[0][1])} → {_mib(points[-1][1])}, "
                f"{_rate(recent.slope_per_s, recent.span_s)} over the last {_duration(recent.span_s)}"
            )
    traffic = _traffic(samples, span)
    evidence = [
        f"no sustained growth over {_duration(min(span, SCALES_S[0]))}: " + "; ".join(parts),
        f"served at {traffic.describe()}",
    ]
    return Verdict(
        Kind.HEALTHY,
        _clamp(0.5 + 0.4 * min(1.0, span / 300)),
        "healthy: no sustained memory growth",
        tuple(evidence),
        (),
        n,
    )


def diagnose(samples: Sequence[Sample], heap: HeapEvidence | None = None) -> Verdict:
    """The verdict for a timeline (oldest first) and the heap windows' evidence.

    Only the newest process's samples count (a restart or fork starts afresh).
    """
    heap = heap if heap is not None else HeapEvidence()
    if not samples:
        return _insufficient(0, 0.0, "no samples yet")
    current = window(samples, float("inf"), lambda s: 0)
    n = len(current)
    span = current[-1][0] - current[0][0] if current else 0.0
    if n < MIN_SAMPLES or span < MIN_SPAN_S:
        return _insufficient(
            n, span, f"not enough data yet: a verdict needs {MIN_SAMPLES} samples over {MIN_SPAN_S:.0f} s"
        )
    tail = samples[-n:]
    for rule in (_thread_leak, lambda s, k: _leak(s, heap, k), _limit_too_low, _page_cache):
        verdict = rule(tail, n)
        if verdict is not None:
            return verdict
    return _healthy(tail, n, span)


def growth_suspected(samples: Sequence[Sample], seconds: float = 15.0) -> bool:
    """Is anonymous memory rising over the last ``seconds``? Cheap; used to open heap windows early."""
    points = window(samples, seconds, _anon)
    if len(points) < 5:
        return False
    trend = fit(points, max_pairs=300)
    if trend is None:
        return False
    return trend.rise >= max(2 * _MiB, 2 * trend.r_noise)


def snapshot_verdict(sample: Sample) -> Verdict:
    """The honest verdict from one sample (``oomguard status``, ``--pid``, ``--root``): insufficient_data.

    Trends need a timeline; one reading still says where memory stands and
    whether the kernel has already OOM-killed in this cgroup.
    """
    evidence = ["one sample: slopes need a timeline (the running agent's /status has one)"]
    pressure = sample.pressure
    if pressure is not None and sample.limit_bytes:
        evidence.append(f"working set at {100 * pressure:.0f}% of the {_mib(sample.limit_bytes)} limit now")
    cg = sample.cgroup
    if cg is not None and cg.events.oom_kill:
        evidence.append(f"the kernel has OOM-killed {cg.events.oom_kill} time(s) in this cgroup (memory.events)")
    return Verdict(Kind.INSUFFICIENT_DATA, 0.0, "not enough data: one sample", tuple(evidence), (), 1)


def postmortem_verdict(
    note: object, *, oom_confirmed: bool | None, suspects: Sequence[Suspect], capture_error: str | None = None
) -> Verdict:
    """The verdict of a bundle a killed process left behind, from its ``armed.json`` and surviving capture.

    Args:
        note: the parsed ``armed.json`` (None or anything else when missing or unreadable).
        oom_confirmed: did the cgroup's ``oom_kill`` counter rise since arming.
        suspects: the capture's allocation sites alive at the kill.
        capture_error: why the capture could not be read, if so.
    """
    armed = note if isinstance(note, dict) else {}
    evidence: list[str] = []
    death = {True: "was OOM-killed", False: "died (not by the OOM killer)", None: "died (cause unknown)"}[oom_confirmed]
    reason = armed.get("reason")
    evidence.append(f"the process {death} after the capture was armed" + (f" ({reason})" if reason else ""))
    if suspects:
        evidence.append(
            "the surviving capture holds, alive at the end: "
            + "; ".join(f"{s.where} {_mib(s.size_bytes)}" for s in suspects[:3])
        )
    elif capture_error:
        evidence.append(f"the capture is unreadable: {capture_error}")
    before = armed.get("verdict")
    kind_text = before.get("kind") if isinstance(before, dict) else None
    try:
        kind = Kind(kind_text) if isinstance(kind_text, str) else Kind.INSUFFICIENT_DATA
    except ValueError:
        kind = Kind.INSUFFICIENT_DATA
    if kind in (Kind.INSUFFICIENT_DATA, Kind.HEALTHY) or not isinstance(before, dict):
        summary = f"the last process {death}; no verdict had been reached before it"
        return Verdict(Kind.INSUFFICIENT_DATA, 0.0, summary, tuple(evidence), tuple(suspects[:10]), 0)
    earlier = before.get("evidence")
    if isinstance(earlier, list):
        evidence += [f"before the kill: {e}" for e in earlier if isinstance(e, str)]
    confidence = before.get("confidence")
    base = float(confidence) if isinstance(confidence, (int, float)) else 0.5
    if oom_confirmed:
        base = min(0.97, base + 0.05)
    summary = f"the last process {death}: {before.get('summary', kind.value)}"
    return Verdict(kind, _clamp(base), summary, tuple(evidence), tuple(suspects[:10]), 0)
