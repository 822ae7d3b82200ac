"""Worker coordination: one bundle per cgroup-level episode, from the process that grew.

gunicorn and ``uvicorn --workers`` run one agent per process, and every agent
sees the same cgroup climb. Without coordination N workers would arm N memray
captures and write N bundles for one episode. Instead:

* every agent follows the anonymous memory of every process in the cgroup
  (``/proc/<pid>/statm``, one read per process per sample);
* when the guard arms (or dumps), the process whose anonymous memory grew most
  over the window among those running an agent is the one that captures: it
  holds the leak's evidence and is the one the kernel will kill;
* it takes an exclusive ``flock`` on a per-cgroup file in the dump directory
  for the episode, so a disagreement at the margin still yields one capture.
  The kernel drops the lock when the holder dies, even by SIGKILL.

A process alone in its cgroup (or the only one running an agent) never touches
the lock file: nothing to coordinate.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cgroup.reader import read_text
from .procfs import runs_agent

__all__ = ["Claim", "Coordinator", "EpisodeLock", "PeerMemory"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MiB = 1024 * 1024


def anon_bytes(proc: Path) -> int | None:
    """Anonymous resident memory of the process at ``proc`` (statm: resident - shared)."""
    text = read_text(proc / "statm")
    if not text:
        return None
    fields = text.split()
    try:
        return (int(fields[1]) - int(fields[2])) * _PAGE
    except (IndexError, ValueError):
        return None


class PeerMemory:
    """Anonymous memory of every process of the cgroup over a sliding window.

    Args:
        procs: the pids of the cgroup (``CgroupReader.procs``).
        proc_root: where procfs is mounted.
        window_s: how far back growth is measured.
        clock: monotonic seconds.
    """

    #: Points kept per pid (at 20 Hz, two minutes).
    MAX_POINTS = 2400

    def __init__(
        self,
        procs: Callable[[], list[int]],
        proc_root: Path = Path("/proc"),
        *,
        window_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._procs = procs
        self.proc_root = proc_root
        self.window_s = window_s
        self._clock = clock
        self._history: dict[int, deque[tuple[float, int]]] = {}
        self.pids: frozenset[int] = frozenset()
        """The cgroup's pids at the last observation."""

    def observe(self) -> frozenset[int]:
        """Read every pid's anonymous memory now; returns the pids seen."""
        now = self._clock()
        pids = frozenset(self._procs())
        for gone in set(self._history) - pids:
            del self._history[gone]
        for pid in pids:
            anon = anon_bytes(self.proc_root / str(pid))
            if anon is None:
                continue
            points = self._history.setdefault(pid, deque(maxlen=self.MAX_POINTS))
            points.append((now, anon))
            while points and now - points[0][0] > self.window_s:
                points.popleft()
        self.pids = pids
        return pids

    def last_anon(self, pid: int) -> int | None:
        """The pid's anonymous memory at the last observation."""
        points = self._history.get(pid)
        return points[-1][1] if points else None

    def growth(self) -> dict[int, tuple[int, int]]:
        """``pid → (growth over the window, anonymous bytes now)``; growth is now minus the window's minimum."""
        return {pid: (p[-1][1] - min(a for _, a in p), p[-1][1]) for pid, p in self._history.items() if p}


class EpisodeLock:
    """An exclusive ``flock`` on ``<dump_dir>/.oomguard-episode-<key>.lock``, held for one episode."""

    def __init__(self, dump_dir: Path, key: str) -> None:
        self.path = dump_dir / f".oomguard-episode-{key}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Try to take the lock without waiting.

        Raises:
            OSError: the lock file cannot be created (a read-only or missing volume).
        """
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The pid written by the current holder (informational; may be stale)."""
        text = read_text(self.path)
        return int(text) if text and text.strip().isdigit() else None

    def release(self) -> None:
        """Give the lock up (no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def after_fork(self) -> None:
        """In a forked child: the parent's lock stays the parent's (close our copy, never unlock it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass(frozen=True, slots=True)
class Claim:
    """Whether this process captures and dumps for the current episode, and why."""

    ours: bool
    reason: str
    leader: int | None = None


class Coordinator:
    """Decides which process of the cgroup captures an episode (see the module docstring).

    Args:
        dump_dir: the shared dump volume (holds the lock file).
        peers: the cgroup's processes and their memory.
        cgroup: the cgroup's identity (its path), part of the lock's name so
            containers sharing a volume do not block each other.
        is_agent: whether a pid runs an oomguard agent.
    """

    def __init__(
        self,
        dump_dir: Path,
        peers: PeerMemory,
        cgroup: str,
        *,
        is_agent: Callable[[int], bool | None] | None = None,
    ) -> None:
        key = hashlib.sha1(f"{socket.gethostname()}:{cgroup}".encode(), usedforsecurity=False).hexdigest()[:12]
        self.lock = EpisodeLock(dump_dir, key)
        self.peers = peers
        self._is_agent = is_agent if is_agent is not None else (lambda pid: runs_agent(peers.proc_root / str(pid)))

    def observe(self) -> frozenset[int]:
        """Follow the cgroup's processes (each sample)."""
        return self.peers.observe()

    def claim(self) -> Claim:
        """Decide now whether this process captures the episode; takes the lock when it does."""
        me = os.getpid()
        if self.lock.held:
            return Claim(True, "this process holds the episode", me)
        growth = self.peers.growth()
        others = [pid for pid in growth if pid != me and self._is_agent(pid)]
        if not others:
            return Claim(True, "the only agent in its cgroup", me)
        candidates = [*others, me] if me in growth else others
        leader = max(candidates, key=lambda pid: growth[pid])
        if leader != me:
            grew, anon = growth[leader]
            return Claim(
                False,
                f"pid {leader} grew most (+{grew / _MiB:.0f} MiB, {anon / _MiB:.0f} MiB anon): it captures",
                leader,
            )
        try:
            if not self.lock.acquire():
                return Claim(False, f"another process (pid {self.lock.holder()}) holds this episode", None)
        except OSError:
            return Claim(True, "the dump volume cannot hold the episode lock: not coordinated", me)
        grew, anon = growth[me]
        return Claim(True, f"this process grew most (+{grew / _MiB:.0f} MiB, {anon / _MiB:.0f} MiB anon)", me)

    def release(self) -> None:
        """The episode is over for this process."""
        self.lock.release()

    def after_fork(self) -> None:
        """In a forked child."""
        self.lock.after_fork()
