"""The guardian: acts on the guard's decisions (SPEC §5) and writes bundles on demand.

Runs on the sampler thread (``on_sample``): arms a streaming memray capture into
a new bundle folder, writes the bundle when the guard says so, removes an armed
capture that never led to a dump, speeds sampling up under pressure and
registers kernel thresholds that wake the sampler. Manual dumps
(``oomguard.dump()``, the dump signal, the admin API) share one lock with it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .bundle import Bundle, BundleWriter, finish_incomplete
from .config import Config
from .diagnosis import postmortem_verdict, verdict_document
from .dumper import Dumper, DumpResult
from .errors import DumpInProgress, DumpVolumeError
from .events import KernelEvents
from .guard import Action, Guard, GuardDecision, GuardSettings, GuardState
from .heap.capture import CAPTURE_NAME, Capture
from .heap.suspects import Suspect, read_capture_suspects
from .heap.types import TypeStats, estimate_type_count, type_stats
from .sample import Sample, SampleSource
from .sampler import Sampler
from .timeline import Timeline
from .workers import Workers, annotate_from_folder

__all__ = ["DUMP_KINDS", "Guardian"]

logger = logging.getLogger(__name__)

DUMP_KINDS = ("heap", "memray", "full")
#: Sampling interval while armed or close to arming.
FAST_INTERVAL = 0.05
#: How far below ARM_AT sampling already speeds up.
FAST_MARGIN = 0.20
#: The guard's first estimate of how long a bundle takes (then measured).
INITIAL_BUNDLE_SECONDS = 0.5
#: Written when a capture is armed; the post-mortem compares its oom_kill count.
ARMED_NOTE = "armed.json"
#: Capture length of a manual memray/full dump when no capture is armed.
DEFAULT_CAPTURE_SECONDS = {"memray": 5.0, "full": 2.0, "heap": 0.0}


@dataclass
class _Armed:
    bundle: Bundle
    capture: Capture | None
    baseline_types: TypeStats | None
    decision: GuardDecision


class Guardian:
    """Owns the guard, the bundle writer and the armed capture of one process."""

    def __init__(
        self,
        config: Config,
        timeline: Timeline,
        sampler: Sampler,
        source: SampleSource,
        *,
        writer: BundleWriter | None = None,
        verdict: Callable[[], Mapping[str, object] | None] | None = None,
        before_capture: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.timeline = timeline
        self.sampler = sampler
        self.source = source
        self.writer = writer or BundleWriter(
            config.dump_dir, max_dumps=config.max_dumps, max_bytes=config.max_dump_bytes
        )
        self.dumper = Dumper(source.take, timeline)
        self.guard = Guard(self._guard_settings())
        self.last_decision: GuardDecision | None = None
        self.last_dump: DumpResult | None = None
        self.detection = "polling"
        self._armed: _Armed | None = None
        self._dump_lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._thresholds_for: int | None = None
        self._reported: set[str] = set()
        self._postmortem_done = False
        self._verdict = verdict
        self._before_capture = before_capture
        """Called before a memray capture starts (the diagnosis stops its heap window: memray would record it)."""
        self.workers = Workers(config.dump_dir, source)
        """Peers of a multi-process service: who captures an episode, OOM kills, routes."""

    def _guard_settings(self) -> GuardSettings:
        # Bundles measured here take 0.05-0.5 s; start from the upper end, then learn.
        return GuardSettings(
            arm_at=self.config.arm_at, dump_at=self.config.dump_at, bundle_seconds=INITIAL_BUNDLE_SECONDS
        )

    # -- the sampler callback ------------------------------------------------

    def on_sample(self, sample: Sample) -> None:
        """Run the guard on the timeline and act on its decision."""
        if not self._postmortem_done:
            self._postmortem_done = True
            self.postmortem()
        if self.workers.observe(sample) is not None:
            self.postmortem()  # a killed peer's tail capture: finish it now, the service lives on
        self._register_thresholds(sample)
        while self._pending:
            trigger, kind = self._pending.pop(0)
            threading.Thread(target=self._dump_quietly, args=(trigger, kind), name="oomguard-dump", daemon=True).start()
        decision = self.guard.observe(self.timeline.snapshot())
        self.last_decision = decision
        pressure = sample.pressure or 0.0
        near = decision.state is not GuardState.CALM or pressure >= self.config.arm_at - FAST_MARGIN
        self.sampler.fast_interval = FAST_INTERVAL if near else None
        if decision.action is Action.ARM:
            if self.workers.may_capture(decision):
                self._arm(decision)
        elif decision.action is Action.DUMP:
            self._dump_episode(decision)
        elif decision.action in (Action.DISARM, Action.RESET):
            self._disarm(decision)

    def _register_thresholds(self, sample: Sample) -> None:
        cg, reader = sample.cgroup, self.source.cgroup_reader
        limit = cg.limit_bytes if cg is not None else None
        if reader is None or cg is None or limit is None or limit == self._thresholds_for:
            return
        self._thresholds_for = limit
        arm, dump = self.config.arm_at, self.config.dump_at
        fractions = {0.3, 0.4, 0.5, 0.6, 0.7, arm - 0.1, arm - 0.05, arm, (arm + dump) / 2, dump, 0.95}
        levels = [int(limit * f) for f in sorted(fractions) if 0 < f < 1]
        events = KernelEvents(cg.version, reader.directory, levels)
        self.sampler.set_kernel_events(events if events.fds else None)
        self.detection = "+".join(events.kinds) if events.kinds else "polling"
        if not events.fds:
            events.close()

    # -- an episode: arm, dump, disarm -----------------------------------------

    def _report(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            logger.error("oomguard: %s (reported once; the application keeps running)", message)

    def check_volume(self) -> bool:
        """Check the dump volume now; a problem is logged once (the same one is not logged again)."""
        try:
            self.writer.check()
        except DumpVolumeError as exc:
            self._report(f"volume:{exc}", str(exc))
            return False
        return True

    def _open(self, trigger: str) -> Bundle | None:
        try:
            return self.writer.open(trigger, os.getpid())
        except DumpVolumeError as exc:
            self._report(f"volume:{exc}", str(exc))
            return None

    def _arm(self, decision: GuardDecision, *, count_types: bool = True) -> _Armed | None:
        bundle = self._open(decision.trigger or "threshold")
        if bundle is None:
            return None
        if self._before_capture is not None:
            self._before_capture()
        capture: Capture | None = Capture(bundle.file_path(CAPTURE_NAME))
        if capture is not None and not capture.start():
            capture = None
        self._write_armed_note(bundle, decision, capture_started=capture is not None)
        self.workers.note_traffic(bundle)
        baseline = None
        sample = self.timeline.latest()
        if (
            count_types
            and sample is not None
            and estimate_type_count(sample, self.dumper.last_type_total) <= (self.dumper.budget.allowed(sample))
        ):
            try:
                baseline = type_stats()
                self.dumper.last_type_total = baseline.total
            except Exception as exc:
                self._report("types", f"object type counts failed: {exc!r}")
        self._armed = _Armed(bundle, capture, baseline, decision)
        logger.warning("oomguard: armed (%s): %s", decision.trigger, decision.reason)
        return self._armed

    def _write_armed_note(self, bundle: Bundle, decision: GuardDecision, *, capture_started: bool) -> None:
        # What the post-mortem needs to tell an OOM kill from any other death, and
        # the detection latency: from the sample that decided to the capture running.
        sample = self.timeline.latest()
        cg = sample.cgroup if sample is not None else None
        note = {
            "armed_at": time.time(),
            "decided_at": sample.time if sample is not None else None,
            "capture_started": capture_started,
            "trigger": decision.trigger,
            "pid": os.getpid(),
            "reason": decision.reason,
            "cgroup": cg.directory if cg is not None else None,
            "oom_kill_count": cg.events.oom_kill if cg is not None else None,
            "verdict": self._verdict_now(),
        }
        try:
            bundle.write_json(ARMED_NOTE, note)
        except DumpVolumeError as exc:
            self._report(f"volume:{exc}", str(exc))

    def refresh_armed_note(self) -> None:
        """The verdict changed while a capture is armed: keep the note's verdict current.

        The post-mortem of a killed process takes its verdict from this note, so
        it must carry the last verdict reached, not the one at arming time.
        """
        armed = self._armed
        if armed is None:
            return
        try:
            note = json.loads(armed.bundle.file_path(ARMED_NOTE).read_text())
        except (OSError, ValueError):
            return
        if isinstance(note, dict):
            note["verdict"] = self._verdict_now()
            try:
                armed.bundle.write_json(ARMED_NOTE, note)
            except (DumpVolumeError, ValueError) as exc:
                self._report(f"volume:{exc}", str(exc))

    def _drop_armed(self) -> bool:
        """Stop the armed capture and remove its folder; False when nothing was armed."""
        self.workers.release()
        armed, self._armed = self._armed, None
        if armed is None:
            return False
        if armed.capture is not None:
            armed.capture.stop()
        try:
            armed.bundle.abandon()
        except DumpVolumeError as exc:
            self._report(f"abandon:{exc}", str(exc))
        return True

    def _disarm(self, decision: GuardDecision) -> None:
        if self._drop_armed():
            logger.warning("oomguard: disarmed: %s", decision.reason)

    def _dump_episode(self, decision: GuardDecision) -> None:
        with self._dump_lock:
            if self._armed is None and not self.workers.may_capture(decision):
                self.guard.after_dump(True)  # a peer that grew more writes this episode's bundle
                return
            armed = self._armed or self._arm(decision)
            self._armed = None
            if armed is None:
                self.guard.after_dump(False)
                return
            guard_info: Mapping[str, object] = {
                "armed": armed.decision.reason,
                "dumped": decision.reason,
                "seconds_to_limit": decision.seconds_to_limit,
                "detection": self.detection,
            }
            try:
                result = self.dumper.write(
                    armed.bundle,
                    trigger=decision.trigger or "threshold",
                    capture=armed.capture,
                    guard=guard_info,
                    baseline_types=armed.baseline_types,
                    verdict=self._verdict_now(),
                    traffic=self.workers.traffic(),
                )
            except DumpVolumeError as exc:
                armed.bundle.close()
                self._report(f"volume:{exc}", str(exc))
                self.guard.after_dump(False)
                return
            except Exception:
                armed.bundle.close()
                logger.exception("oomguard: writing the bundle failed")
                self.guard.after_dump(False)
                return
        self.last_dump = result
        self.guard.set_bundle_seconds(max(0.5, result.seconds))
        self.guard.after_dump(True)
        logger.warning("oomguard: bundle written to %s in %.2f s (%s)", result.path, result.seconds, decision.reason)
        if decision.seconds_to_limit is not None:
            # Still climbing: keep a capture streaming until the end of the episode, so
            # if the kill comes the post-mortem shows what happened after the bundle.
            self._armed = self._arm(decision, count_types=False)

    # -- manual dumps ------------------------------------------------------------

    def request_dump(self, trigger: str = "signal", kind: str = "full") -> None:
        """Ask for a bundle from a signal handler: the sampler thread starts it."""
        self._pending.append((trigger, kind))
        self.sampler.wake()

    def _dump_quietly(self, trigger: str, kind: str) -> None:
        try:
            self.dump(kind=kind, trigger=trigger)
        except DumpInProgress:
            logger.warning("oomguard: a dump is already being written; %s request ignored", trigger)
        except DumpVolumeError as exc:
            self._report(f"volume:{exc}", str(exc))
        except Exception:
            logger.exception("oomguard: %s dump failed", trigger)

    def dump(self, kind: str = "full", *, trigger: str = "manual", seconds: float | None = None) -> Path:
        """Write a bundle now and return its folder.

        Args:
            kind: ``heap`` (types, tracemalloc, threads), ``memray`` (a capture of
                ``seconds``) or ``full`` (both).
            trigger: recorded in the folder name and manifest.
            seconds: length of the memray capture (when no episode capture is armed).

        Raises:
            ValueError: unknown kind.
            DumpInProgress: another bundle is being written.
            DumpVolumeError: the volume cannot take the bundle.
        """
        if kind not in DUMP_KINDS:
            raise ValueError(f"unknown dump kind {kind!r}: use one of {', '.join(DUMP_KINDS)}")
        if not self._dump_lock.acquire(blocking=False):
            raise DumpInProgress("a bundle is already being written")
        try:
            bundle = self.writer.open(trigger, os.getpid())
            capture: Capture | None = None
            length = DEFAULT_CAPTURE_SECONDS[kind] if seconds is None else seconds
            if kind != "heap" and self._armed is None and length > 0:
                if self._before_capture is not None:
                    self._before_capture()
                capture = Capture(bundle.file_path(CAPTURE_NAME))
                if capture.start():
                    time.sleep(length)
                else:
                    capture = None
            try:
                result = self.dumper.write(
                    bundle,
                    trigger=trigger,
                    capture=capture,
                    kind=kind,
                    verdict=self._verdict_now(),
                    traffic=self.workers.traffic(),
                )
            except BaseException:
                bundle.close()
                raise
            self.last_dump = result
            return result.path
        finally:
            self._dump_lock.release()

    # -- post-mortem ---------------------------------------------------------------

    def postmortem(self) -> list[Path]:
        """Finish bundles a killed process left without a manifest (its capture survived)."""
        finished = []
        try:
            dumps = self.writer.list()
        except OSError:
            return []
        for info in dumps:
            if info.has_manifest or info.in_progress:
                continue
            manifest: dict[str, object] = {"suspects": [], "verdict": None}
            manifest["oom_kill_confirmed"] = self._oom_confirmed(info.path / ARMED_NOTE)
            capture = info.path / CAPTURE_NAME
            if capture.exists():
                try:
                    suspects = annotate_from_folder(info.path, read_capture_suspects(capture))
                    manifest["suspects"] = [
                        {"where": s.where, "size_bytes": s.size_bytes, "count": s.count, "growth_bytes": s.growth_bytes}
                        | ({"route": s.route} if s.route else {})
                        for s in suspects[:13]
                    ]
                except OSError as exc:
                    manifest["capture_error"] = str(exc)
            manifest["verdict"] = _postmortem_verdict(info.path / ARMED_NOTE, manifest)
            try:
                finished.append(finish_incomplete(info, manifest))
                logger.warning("oomguard: post-mortem: %s was cut short by a kill; manifest written", info.id)
            except (DumpInProgress, DumpVolumeError) as exc:
                self._report(f"postmortem:{info.id}", str(exc))
        return finished

    def _oom_confirmed(self, note_path: Path) -> bool | None:
        """Did the cgroup's oom_kill counter rise since the capture was armed? None: cannot tell."""
        try:
            note = json.loads(note_path.read_text())
        except (OSError, ValueError):
            return None
        before = note.get("oom_kill_count") if isinstance(note, dict) else None
        sample = self.timeline.latest() or self.source.take()
        cg = sample.cgroup
        if not isinstance(before, int) or cg is None or cg.events.oom_kill is None:
            return None
        if note.get("cgroup") != cg.directory:
            return None  # another cgroup (a new container): its counter says nothing about the old one
        return cg.events.oom_kill > before

    def _verdict_now(self) -> Mapping[str, object] | None:
        """The running diagnosis's verdict document, for a manifest or the armed note."""
        if self._verdict is None:
            return None
        try:
            return self._verdict()
        except Exception as exc:  # a bundle without a verdict beats no bundle
            self._report(f"verdict:{type(exc).__name__}", f"the verdict failed: {exc!r}")
            return None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def armed(self) -> bool:
        """True while an episode capture is running."""
        return self._armed is not None

    def close(self) -> None:
        """The process is stopping the agent (or exiting): remove an armed capture's folder.

        Only a kill leaves an armed folder behind for the post-mortem; a normal
        exit must not be mistaken for one.
        """
        self._drop_armed()

    def after_fork(self) -> None:
        """In a forked child: the parent's episode is not ours; start afresh."""
        armed, self._armed = self._armed, None
        if armed is not None:
            armed.bundle.forget_after_fork()  # the parent's capture and lock stay the parent's
        self._dump_lock = threading.Lock()
        self._pending = []
        self._thresholds_for = None
        self.guard = Guard(self._guard_settings())
        self._reported = set()
        self.workers.after_fork()


def _postmortem_verdict(note_path: Path, manifest: Mapping[str, object]) -> dict[str, object]:
    """The verdict of a killed process's bundle: its armed note's verdict, the kill, the surviving capture."""
    try:
        note: object = json.loads(note_path.read_text())
    except (OSError, ValueError):
        note = None
    rows = manifest.get("suspects")
    suspects = [
        Suspect(
            str(r.get("where")),
            int(r.get("size_bytes") or 0),
            int(r.get("count") or 0),
            int(r.get("growth_bytes") or 0),
        )
        for r in (rows if isinstance(rows, list) else [])
        if isinstance(r, dict)
    ]
    confirmed = manifest.get("oom_kill_confirmed")
    error = manifest.get("capture_error")
    verdict = postmortem_verdict(
        note,
        oom_confirmed=confirmed if isinstance(confirmed, bool) else None,
        suspects=suspects,
        capture_error=error if isinstance(error, str) else None,
    )
    return verdict_document(verdict)
