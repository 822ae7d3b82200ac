"""The guardian's view of a multi-process service: who captures, which worker the kernel killed, which routes.

Glue between the guardian and :mod:`oomguard.coordination`,
:mod:`oomguard.oomkills` and :mod:`oomguard.traffic`, so the guardian stays
about one process's episode.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from .bundle import Bundle
from .coordination import Claim, Coordinator, PeerMemory
from .errors import DumpVolumeError
from .guard import GuardDecision
from .heap.suspects import Suspect
from .oomkills import KillWatch, OomKill
from .retention import list_dumps
from .sample import Sample, SampleSource
from .traffic import TrafficSnapshot, current_snapshot

__all__ = ["TRAFFIC_NOTE", "Workers", "annotate_from_folder"]

logger = logging.getLogger(__name__)

#: Written into an armed bundle: the routes so far, so a post-mortem can name them.
TRAFFIC_NOTE = "traffic.json"


class Workers:
    """Coordination, OOM-kill records and route evidence for one agent.

    Args:
        dump_dir: the shared dump volume.
        source: this process's sample source (its cgroup reader lists the peers).
        proc_root: where procfs is mounted.
    """

    def __init__(self, dump_dir: Path, source: SampleSource, *, proc_root: Path = Path("/proc")) -> None:
        reader = source.cgroup_reader
        self.peers = PeerMemory(reader.procs if reader is not None else list, proc_root)
        cgroup = reader.location.directory if reader is not None else "/"
        self.coordinator = Coordinator(dump_dir, self.peers, cgroup)
        self.kill_watch = KillWatch(dump_dir, evidence=lambda pids: _bundles_of(dump_dir, pids))
        self.enabled = reader is not None
        self.last_claim: Claim | None = None
        self._standby_logged = False

    @property
    def kills(self) -> tuple[OomKill, ...]:
        """OOM kills of other processes of the cgroup seen by this agent, oldest first."""
        return tuple(self.kill_watch.kills)

    def observe(self, sample: Sample) -> OomKill | None:
        """Follow the cgroup's processes; returns an OOM kill this agent was the first to record.

        Only that agent finishes the killed process's capture (post-mortem), so
        N survivors do not each read it.
        """
        if not self.enabled:
            return None
        pids = self.peers.observe()
        kill = self.kill_watch.observe(sample, pids, self.peers.last_anon)
        return kill if kill is not None and self.kill_watch.recorded_first(kill) else None

    def may_capture(self, decision: GuardDecision) -> bool:
        """Whether this process arms/dumps for the episode (the others stand by)."""
        if not self.enabled:
            return True
        claim = self.coordinator.claim()
        self.last_claim = claim
        if not claim.ours and not self._standby_logged:
            self._standby_logged = True
            logger.warning("oomguard: standing by (%s): %s", decision.trigger, claim.reason)
        return claim.ours

    def release(self) -> None:
        """The episode is over for this process."""
        self.coordinator.release()
        self._standby_logged = False

    def traffic(self) -> TrafficSnapshot | None:
        """This process's routes so far (None without an integration)."""
        return current_snapshot()

    def note_traffic(self, bundle: Bundle) -> None:
        """Write the routes so far into an armed bundle (read back by a post-mortem)."""
        snapshot = current_snapshot()
        if snapshot is None:
            return
        with contextlib.suppress(DumpVolumeError):  # the capture matters more; the guardian reports the volume
            bundle.write_json(TRAFFIC_NOTE, snapshot.to_json())

    def after_fork(self) -> None:
        """In a forked child."""
        self.coordinator.after_fork()
        self.kill_watch.after_fork()
        self._standby_logged = False


def annotate_from_folder(folder: Path, suspects: Sequence[Suspect]) -> list[Suspect]:
    """Suspects of a killed process's capture, with routes from the ``traffic.json`` it left."""
    try:
        snapshot = TrafficSnapshot.from_json(json.loads((folder / TRAFFIC_NOTE).read_text()))
    except (OSError, ValueError):
        snapshot = None
    return snapshot.annotate(suspects) if snapshot is not None else list(suspects)


def _bundles_of(dump_dir: Path, pids: Sequence[int]) -> list[str]:
    wanted = set(pids)
    try:
        return [info.id for info in list_dumps(dump_dir) if info.pid in wanted]
    except OSError:
        return []
