"""Worker coordination: growth ranking from /proc, the episode lock, claims."""

from __future__ import annotations

import os
from pathlib import Path

from oomguard.coordination import Coordinator, EpisodeLock, PeerMemory, anon_bytes

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024


class FakeProc:
    """A /proc tree with one ``statm`` per pid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: list[int] = []

    def set(self, pid: int, anon: int) -> None:
        folder = self.root / str(pid)
        folder.mkdir(parents=True, exist_ok=True)
        pages = anon // PAGE
        (folder / "statm").write_text(f"90000 {pages + 1000} 1000 10 0 5000 0\n")
        if pid not in self.pids:
            self.pids.append(pid)

    def kill(self, pid: int) -> None:
        self.pids.remove(pid)
        (self.root / str(pid) / "statm").unlink()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_anon_bytes_is_resident_minus_shared(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    proc.set(5, 40 * MiB)
    assert anon_bytes(tmp_path / "5") == 40 * MiB
    assert anon_bytes(tmp_path / "6") is None


def test_growth_over_the_window(tmp_path: Path) -> None:
    proc, clock = FakeProc(tmp_path), Clock()
    peers = PeerMemory(lambda: list(proc.pids), tmp_path, window_s=10, clock=clock)
    proc.set(1, 50 * MiB)
    proc.set(2, 60 * MiB)
    peers.observe()
    for step in range(1, 6):
        clock.now = step
        proc.set(1, (50 + 20 * step) * MiB)
        peers.observe()
    growth = peers.growth()
    assert growth[1] == (100 * MiB, 150 * MiB)
    assert growth[2] == (0, 60 * MiB)
    clock.now = 30  # the window moved on: the old minimum is forgotten
    peers.observe()
    assert peers.growth()[1][0] == 0
    proc.kill(2)
    assert peers.observe() == frozenset({1})
    assert 2 not in peers.growth()


def coordinator(tmp_path: Path, proc: FakeProc, agents: set[int]) -> Coordinator:
    peers = PeerMemory(lambda: list(proc.pids), tmp_path / "proc")
    return Coordinator(tmp_path / "dumps", peers, "/sys/fs/cgroup/x", is_agent=lambda pid: pid in agents)


def test_alone_in_the_cgroup_claims_without_a_lock(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    proc.set(os.getpid(), 10 * MiB)
    proc.set(999_999, 500 * MiB)  # a process without an agent (a sidecar) never competes
    coord = coordinator(tmp_path, proc, {os.getpid()})
    coord.observe()
    claim = coord.claim()
    assert claim.ours
    assert not coord.lock.held
    assert not (tmp_path / "dumps").exists()


def test_the_worker_that_grew_most_claims(tmp_path: Path) -> None:
    me, peer = os.getpid(), 999_998
    proc = FakeProc(tmp_path / "proc")
    proc.set(me, 50 * MiB)
    proc.set(peer, 50 * MiB)
    coord = coordinator(tmp_path, proc, {me, peer})
    coord.observe()
    proc.set(peer, 200 * MiB)
    coord.observe()
    claim = coord.claim()
    assert not claim.ours
    assert claim.leader == peer
    assert "grew most" in claim.reason
    proc.set(me, 400 * MiB)
    coord.observe()
    claim = coord.claim()
    assert claim.ours
    assert coord.lock.held
    coord.release()
    assert not coord.lock.held


def test_the_episode_lock_is_exclusive_across_holders(tmp_path: Path) -> None:
    first, second = EpisodeLock(tmp_path, "k"), EpisodeLock(tmp_path, "k")
    assert first.acquire()
    assert not second.acquire()  # flock: a second open file description cannot take it
    assert first.holder() == os.getpid()
    first.release()
    assert second.acquire()
    second.release()
    assert EpisodeLock(tmp_path, "other").acquire()


def test_an_unwritable_volume_does_not_block_the_capture(tmp_path: Path) -> None:
    me, peer = os.getpid(), 999_997
    proc = FakeProc(tmp_path / "proc")
    proc.set(me, 300 * MiB)
    proc.set(peer, 50 * MiB)
    (tmp_path / "dumps").write_text("a file, not a folder")
    coord = coordinator(tmp_path, proc, {me, peer})
    coord.observe()
    claim = coord.claim()
    assert claim.ours
    assert "not coordinated" in claim.reason
