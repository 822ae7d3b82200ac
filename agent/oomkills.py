"""Worker OOM kills: the kernel killed a process of the cgroup and the container lived on.

In a pre-fork service the kernel's memcg OOM killer picks the largest worker,
the master respawns it and the container survives: nothing but the cgroup's
``oom_kill`` counter and a vanished pid tell. Every agent in the cgroup sees
the counter rise; the first one to append the kill to ``<dump_dir>/oom-kills.jsonl``
(under an ``flock``) logs it, so each kill is logged once and kept on the volume.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .sample import Sample

__all__ = ["KILLS_FILE", "KillWatch", "OomKill", "read_kills"]

logger = logging.getLogger(__name__)

KILLS_FILE = "oom-kills.jsonl"
_LOCK = ".oomguard-kills.lock"
_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OomKill:
    """One rise of the cgroup's ``oom_kill`` counter seen by a surviving process."""

    time: float
    cgroup: str
    oom_kill: int
    """The counter after the kill(s)."""
    kills: int
    """How much the counter rose since the previous sample."""
    pids: tuple[int, ...]
    """Pids of the cgroup that vanished since the previous sample, largest first (the victim leads)."""
    anon_bytes: tuple[int | None, ...]
    """Their anonymous memory when last seen."""
    seen_by: int
    evidence: tuple[str, ...] = ()
    """Bundles on the volume written by the killed pids."""

    def to_json(self) -> dict[str, object]:
        """Plain JSON-ready fields."""
        return asdict(self)


def read_kills(dump_dir: Path) -> list[dict[str, object]]:
    """The kills recorded on the volume, oldest first (unreadable lines skipped)."""
    try:
        text = (dump_dir / KILLS_FILE).read_text(encoding="utf-8")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                found.append(value)
    return found


@dataclass
class _Pending:
    """A counter rise whose victim has not left the cgroup yet."""

    previous: int
    since: float
    before: frozenset[int]
    count: int = 0


class KillWatch:
    """Notices OOM kills in the cgroup from consecutive samples.

    Args:
        dump_dir: where ``oom-kills.jsonl`` is kept.
        evidence: maps the killed pids to the ids of their bundles on the volume.
        keep: kills kept in memory for the status document.
    """

    def __init__(
        self,
        dump_dir: Path,
        *,
        evidence: Callable[[Sequence[int]], list[str]] | None = None,
        keep: int = 50,
    ) -> None:
        self.dump_dir = dump_dir
        self._evidence = evidence
        self.kills: deque[OomKill] = deque(maxlen=keep)
        self._count: int | None = None
        self._cgroup: str | None = None
        self._known: set[int] = set()
        self._anon: dict[int, int | None] = {}
        self._pending: _Pending | None = None
        self._first: set[int] = set()

    #: How long a counter rise waits for its victim's pid to leave cgroup.procs.
    SETTLE_S = 3.0

    def observe(self, sample: Sample, pids: frozenset[int], anon: Callable[[int], int | None]) -> OomKill | None:
        """Compare with the previous samples; returns a kill once its victim has left the cgroup.

        The kernel raises ``oom_kill`` before the victim has exited, so the pid
        may still be listed in the sample that sees the rise: the kill is
        reported when a pid known before it is gone (or after ``SETTLE_S``).
        """
        cg = sample.cgroup
        count = cg.events.oom_kill if cg is not None else None
        previous, self._count = self._count, count
        for pid in pids:  # the largest each pid was: a victim's memory shrinks while it dies
            self._anon[pid] = max(anon(pid) or 0, self._anon.get(pid) or 0) or None
        if cg is None or count is None or previous is None or self._cgroup != cg.directory:
            self._cgroup = cg.directory if cg is not None else None
            self._pending = None
            self._known = set(pids)
            return None  # the first sample only sets the baseline: earlier kills are not ours to report
        if count > previous:
            if self._pending is None:
                self._pending = _Pending(previous, sample.monotonic, frozenset(self._known))
            self._pending.count = count
        kill = self._settle(sample, cg.directory, pids)
        self._known = set(pids) if self._pending is None else self._known | set(pids)
        for pid in set(self._anon) - self._known:
            del self._anon[pid]
        return kill

    def _settle(self, sample: Sample, cgroup: str, pids: frozenset[int]) -> OomKill | None:
        pending = self._pending
        if pending is None:
            return None
        gone = sorted(pending.before - pids, key=lambda pid: self._anon.get(pid) or 0, reverse=True)
        if not gone and sample.monotonic - pending.since < self.SETTLE_S:
            return None
        self._pending = None
        kill = OomKill(
            time=sample.time,
            cgroup=cgroup,
            oom_kill=pending.count,
            kills=pending.count - pending.previous,
            pids=tuple(gone),
            anon_bytes=tuple(self._anon.get(pid) for pid in gone),
            seen_by=os.getpid(),
            evidence=tuple(self._evidence(gone)) if self._evidence is not None and gone else (),
        )
        self.kills.append(kill)
        if self._persist(kill):
            self._first.add(kill.oom_kill)
            victims = ", ".join(
                f"pid {pid} ({(a or 0) / _MiB:.0f} MiB anon)" for pid, a in zip(kill.pids, kill.anon_bytes, strict=True)
            )
            logger.error(
                "oomguard: the kernel OOM-killed %s in %s (oom_kill %d, +%d); the service lives on%s",
                victims or "a process",
                kill.cgroup,
                kill.oom_kill,
                kill.kills,
                f"; evidence: {', '.join(kill.evidence)}" if kill.evidence else "",
            )
        return kill

    def recorded_first(self, kill: OomKill) -> bool:
        """Whether this agent was the one that recorded (and logged) ``kill``."""
        return kill.oom_kill in self._first

    def _persist(self, kill: OomKill) -> bool:
        """Append the kill to the volume unless another agent already did; True when we did (or cannot tell)."""
        try:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dump_dir / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return True  # no volume: every agent logs; better twice than never
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            for known in read_kills(self.dump_dir):
                seen = known.get("oom_kill")
                if known.get("cgroup") == kill.cgroup and isinstance(seen, int) and seen >= kill.oom_kill:
                    return False
            line = json.dumps(kill.to_json(), ensure_ascii=False) + "\n"
            out = os.open(self.dump_dir / KILLS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(out, line.encode("utf-8"))
            finally:
                os.close(out)
            return True
        except OSError:
            return True
        finally:
            os.close(fd)

    def after_fork(self) -> None:
        """In a forked child: kills seen by the parent stay in the parent's status."""
        self.kills = deque(maxlen=self.kills.maxlen)
        self._count = None
        self._pending = None
