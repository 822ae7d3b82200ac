"""Write one bundle: run the collectors that fit the memory budget, manifest last.

Collectors run cheapest-and-most-valuable first. Before each one the working set
is read again (one cgroup read) and the collector runs only if its estimated
peak cost fits ``min(headroom - safety margin, cap)``: the bundle must never be
what kills the container. What ran, what was skipped and why, how long it took
and the bundle's own peak extra memory go into the manifest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .bundle import Bundle
from .errors import DumpVolumeError
from .heap.capture import CAPTURE_NAME, Capture
from .heap.collectors import estimate_tracemalloc_snapshot, thread_stacks, tracemalloc_top
from .heap.suspects import Suspect, read_capture_suspects
from .heap.types import TypeStats, estimate_type_count, type_growth, type_stats
from .sample import Sample
from .status import memory_fields
from .timeline import Timeline
from .traffic import TrafficSnapshot

__all__ = ["Budget", "CollectorRecord", "DumpResult", "Dumper"]

logger = logging.getLogger(__name__)

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CollectorRecord:
    """What one collector did in a bundle."""

    name: str
    ran: bool
    reason: str
    estimate_bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class DumpResult:
    """A written (or attempted) bundle."""

    id: str
    path: Path
    trigger: str
    complete: bool
    seconds: float
    working_set_rise_bytes: int
    """Peak working-set rise while the bundle was written: its own cost plus the app's growth."""
    collectors: tuple[CollectorRecord, ...]
    suspects: tuple[Suspect, ...]


@dataclass(frozen=True, slots=True)
class Budget:
    """How much extra memory a bundle may use.

    ``safety_fraction`` of the limit always stays free; a bundle never uses more
    than ``cap_fraction`` of the limit in total.
    """

    safety_fraction: float = 0.04
    cap_fraction: float = 0.05
    floor_bytes: int = 4 * _MiB

    def allowed(self, sample: Sample) -> int:
        """Extra bytes allowed now, from a fresh sample."""
        limit, headroom = sample.limit_bytes, sample.headroom_bytes
        if limit is None or headroom is None:
            return self.floor_bytes
        safety = max(int(limit * self.safety_fraction), self.floor_bytes)
        return max(0, min(headroom - safety, int(limit * self.cap_fraction)))


@dataclass
class _Run:
    bundle: Bundle
    baseline_ws: int
    peak_ws: int
    headroom: int | None = None
    records: list[CollectorRecord] = field(default_factory=list)


class Dumper:
    """Writes bundles for one process.

    Args:
        take_sample: a fresh reading (used between collectors for the budget).
        timeline: the sample ring buffer (written as ``timeline.json``).
        budget: the memory budget rules.
    """

    def __init__(self, take_sample: Callable[[], Sample], timeline: Timeline, budget: Budget | None = None) -> None:
        self._take = take_sample
        self.timeline = timeline
        self.budget = budget if budget is not None else Budget()
        self.last_type_total: int | None = None

    def _attempt(self, run: _Run, name: str, estimate: int, job: Callable[[], object]) -> bool:
        sample = self._take()
        run.headroom = sample.headroom_bytes
        allowed = self.budget.allowed(sample)
        ws = sample.working_set_bytes or 0
        run.peak_ws = max(run.peak_ws, ws)
        if estimate > allowed:
            reason = f"skipped: needs ~{estimate / _MiB:.1f} MiB, budget {allowed / _MiB:.1f} MiB"
            run.records.append(CollectorRecord(name, False, reason, estimate, 0.0))
            return False
        started = time.monotonic()
        try:
            job()
        except DumpVolumeError:
            raise
        except Exception as exc:  # one failing collector must not lose the bundle
            logger.warning("oomguard: collector %s failed: %r", name, exc)
            run.records.append(CollectorRecord(name, False, f"failed: {exc!r}", estimate, time.monotonic() - started))
            return False
        fresh = self._take()
        run.peak_ws = max(run.peak_ws, fresh.working_set_bytes or 0)
        run.headroom = fresh.headroom_bytes
        run.records.append(CollectorRecord(name, True, "ok", estimate, time.monotonic() - started))
        return True

    def write(
        self,
        bundle: Bundle,
        *,
        trigger: str,
        capture: Capture | None,
        kind: str = "full",
        guard: Mapping[str, object] | None = None,
        baseline_types: TypeStats | None = None,
        verdict: Mapping[str, object] | None = None,
        traffic: TrafficSnapshot | None = None,
    ) -> DumpResult:
        """Run the collectors into ``bundle`` and finish it with its manifest.

        Raises:
            DumpVolumeError: the volume failed; the bundle is left without a manifest.
        """
        started = time.monotonic()
        first = self._take()
        run = _Run(bundle, first.working_set_bytes or 0, first.working_set_bytes or 0)
        suspects: list[Suspect] = []
        heap = kind in ("heap", "full")
        extra: dict[str, object] = {}

        bundle.write_json("memory.json", {"memory": memory_fields(first), "sample": asdict(first)})
        # The capture first: its suspects are what on-call reads, and the app may
        # still be growing while the later collectors run (the budget shrinks).
        if capture is not None:
            capture.stop()
            capture_path = bundle.file_path(CAPTURE_NAME)
            if capture_path.exists():
                bundle.add_file(CAPTURE_NAME, "memray")
                size = capture_path.stat().st_size
                found: list[Suspect] = []

                def memray_job() -> None:
                    found.extend(read_capture_suspects(capture_path))
                    bundle.write_json("memray_suspects.json", [asdict(s) for s in found])

                if self._attempt(run, "memray_suspects", size * 4 + 8 * _MiB, memray_job):
                    suspects = found[:10]
            elif capture.error:
                run.records.append(CollectorRecord("memray", False, capture.error, 0, 0.0))
        elif kind in ("memray", "full"):
            run.records.append(CollectorRecord("memray", False, "skipped: no capture was armed", 0, 0.0))

        self._attempt(run, "threads", 1 * _MiB, lambda: bundle.write_text("threads.txt", thread_stacks()))
        samples = self.timeline.snapshot()
        self._attempt(
            run, "timeline", len(samples) * 2048, lambda: bundle.write_json("timeline.json", _timeline(samples))
        )
        if heap:
            stats_holder: list[TypeStats] = []

            def types_job() -> None:
                stats = type_stats()
                self.last_type_total = stats.total
                stats_holder.append(stats)
                document: dict[str, object] = {"total": stats.total, "by_type": dict(stats.by_type)}
                if baseline_types is not None:
                    document["growth_since_armed"] = type_growth(baseline_types, stats)
                bundle.write_json("gc_types.json", document)

            self._attempt(run, "gc_types", estimate_type_count(first, self.last_type_total), types_job)
            if stats_holder and baseline_types is not None:
                extra["type_growth"] = type_growth(baseline_types, stats_holder[0])[:10]
            snapshot_cost = estimate_tracemalloc_snapshot()
            if snapshot_cost is None:
                run.records.append(CollectorRecord("tracemalloc", False, "skipped: tracemalloc is not tracing", 0, 0.0))
            else:
                top: list[tuple[str, int, int]] = []

                def tracemalloc_job() -> None:
                    top.extend(tracemalloc_top())
                    rows = [{"where": w, "size_bytes": s, "count": c} for w, s, c in top]
                    bundle.write_json("tracemalloc_top.json", rows)

                if self._attempt(run, "tracemalloc", snapshot_cost, tracemalloc_job) and not suspects:
                    suspects = [Suspect(w, s, c, 0) for w, s, c in top[:10]]
        if traffic is not None:  # which routes' requests left memory behind (integrations)
            suspects = traffic.annotate(suspects)
            extra["routes"] = traffic.to_json()["routes"]
            self._attempt(run, "traffic", 1 * _MiB, lambda: bundle.write_json("traffic.json", traffic.to_json()))
        seconds = time.monotonic() - started
        peak_extra = max(0, run.peak_ws - run.baseline_ws)
        manifest: dict[str, object] = {
            "trigger": trigger,
            "kind": kind,
            "memory": memory_fields(first),
            "verdict": dict(verdict) if verdict is not None else None,
            "suspects": [
                {"where": s.where, "size_bytes": s.size_bytes, "count": s.count, "growth_bytes": s.growth_bytes}
                | ({"route": s.route} if s.route else {})
                for s in suspects
            ],
            "guard": dict(guard) if guard is not None else None,
            "collectors": [asdict(r) for r in run.records],
            "bundle": {
                "seconds": round(seconds, 3),
                "working_set_rise_bytes": peak_extra,
                "headroom_at_finish_bytes": run.headroom,
            },
            **extra,
        }
        bundle.finish(manifest)
        return DumpResult(
            bundle.id, bundle.path, trigger, True, seconds, peak_extra, tuple(run.records), tuple(suspects)
        )


def _timeline(samples: tuple[Sample, ...]) -> dict[str, object]:
    """The timeline as compact columns (one row per sample)."""
    columns = ["time", "pid", "usage", "working_set", "limit", "anon", "file", "rss", "threads", "traced", "requests"]
    rows = []
    for s in samples:
        cg = s.cgroup
        rows.append(
            [
                round(s.time, 3),
                s.pid,
                s.usage_bytes,
                s.working_set_bytes,
                s.limit_bytes,
                cg.anon_bytes if cg else None,
                cg.file_bytes if cg else None,
                s.process.rss_bytes,
                s.process.threads,
                s.python.traced_bytes if s.python else None,
                s.requests_total,
            ]
        )
    return {"columns": columns, "rows": rows}
