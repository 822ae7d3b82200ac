"""Read the memory cgroup of a process from a filesystem root.

``root`` is where the kernel's filesystems are seen from: ``/`` for this process,
``/proc/<pid>/root`` for another process (a sidecar), or a folder holding a
captured tree (``oomguard status --root``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import CgroupUnavailable
from .discovery import Location, locate_controller, parse_mountinfo, parse_proc_cgroup
from .memory import CgroupMemory, interpret_v1, interpret_v2
from .parse import parse_meminfo

__all__ = ["CgroupReader", "HostMemory", "read_host_memory", "read_text"]

_V2_FILES = ("memory.current", "memory.stat", "memory.events", "memory.pressure")
_V1_FILES = (
    "memory.usage_in_bytes",
    "memory.stat",
    "memory.oom_control",
    "memory.failcnt",
    "memory.kmem.tcp.usage_in_bytes",
)
_OPTIONAL = frozenset({"memory.pressure", "memory.kmem.tcp.usage_in_bytes", "pids.current", "pids.max"})


def read_text(path: str | Path) -> str | None:
    """The whole of a small kernel file, or None when it cannot be read.

    ``os.open``/``os.read`` rather than ``open()``: this runs every sample and
    the buffered text layer costs several times more than the read itself.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class HostMemory:
    """Host RAM from ``/proc/meminfo``: the limit when the cgroup has none."""

    total_bytes: int
    available_bytes: int | None

    @property
    def used_bytes(self) -> int | None:
        """MemTotal - MemAvailable: what the host cannot give back quickly."""
        return None if self.available_bytes is None else self.total_bytes - self.available_bytes


def read_host_memory(root: Path = Path("/")) -> HostMemory | None:
    """Read ``<root>/proc/meminfo``; None when unreadable."""
    text = read_text(root / "proc/meminfo")
    values = parse_meminfo(text) if text else {}
    if "MemTotal" not in values:
        return None
    return HostMemory(values["MemTotal"], values.get("MemAvailable"))


def _ancestors(directory: str, mount_point: str) -> list[str]:
    """``directory`` and each parent up to and including ``mount_point``."""
    path, stop = PurePosixPath(directory), PurePosixPath(mount_point)
    chain = [str(path)]
    while path != stop and stop in path.parents:
        path = path.parent
        chain.append(str(path))
    return chain


class CgroupReader:
    """Finds a process's memory cgroup once, then reads it on every :meth:`read`.

    Args:
        root: filesystem root the cgroup mounts are seen from.
        proc: the ``/proc/<pid>`` directory whose ``cgroup`` and ``mountinfo`` to use;
            defaults to ``<root>/proc/self``.

    Raises:
        CgroupUnavailable: no memory cgroup is mounted or the proc files are unreadable.
    """

    #: Ancestors' limits change rarely; re-read them this often (the leaf every time).
    ANCESTOR_REFRESH_S = 30.0

    def __init__(self, root: Path = Path("/"), proc: Path | None = None) -> None:
        self.root = root
        proc = proc if proc is not None else root / "proc/self"
        cgroup_text = read_text(proc / "cgroup")
        mountinfo_text = read_text(proc / "mountinfo")
        if cgroup_text is None or mountinfo_text is None:
            raise CgroupUnavailable(f"cannot read {proc}/cgroup and {proc}/mountinfo")
        lines, mounts = parse_proc_cgroup(cgroup_text), parse_mountinfo(mountinfo_text)
        location = locate_controller("memory", lines, mounts, self._exists)
        if location is None:
            raise CgroupUnavailable(f"no memory cgroup mounted for {proc} (root {root})")
        self.location: Location = location
        self.pids_location: Location | None = (
            locate_controller("pids", lines, mounts, self._exists) if location.version == 1 else location
        )
        # Paths are built once: Path arithmetic would cost more than the reads.
        directory = str(self.directory)
        names = _V2_FILES if location.version == 2 else _V1_FILES
        self._files = [(name, f"{directory}/{name}") for name in names]
        if self.pids_location is not None:
            pids_dir = str(self._host(self.pids_location.directory))
            self._files += [(n, f"{pids_dir}/{n}") for n in ("pids.current", "pids.max")]
        limit_file = "memory.max" if location.version == 2 else "memory.limit_in_bytes"
        chain = _ancestors(location.directory, location.mount_point)
        self._limit_files = [(f"{d}/{limit_file}", str(self._host(d) / limit_file)) for d in chain]
        self._procs_file = f"{directory}/cgroup.procs"
        self._ancestor_limits: list[tuple[str, str | None]] = []
        self._ancestors_read_at = -self.ANCESTOR_REFRESH_S

    def _exists(self, path: str) -> bool:
        try:
            return os.path.exists(self._host(path))
        except OSError:
            return False

    def _host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def directory(self) -> Path:
        """The memory cgroup directory, as a path that can be opened from here."""
        return self._host(self.location.directory)

    def read(self) -> CgroupMemory:
        """Read every memory file; unreadable ones give a partial result, never an error."""
        files = {name: read_text(path) for name, path in self._files}
        unreadable = tuple(n for n, t in files.items() if t is None and n not in _OPTIONAL)
        now = time.monotonic()
        if now - self._ancestors_read_at >= self.ANCESTOR_REFRESH_S:
            self._ancestor_limits = [(shown, read_text(p)) for shown, p in self._limit_files[1:]]
            self._ancestors_read_at = now
        shown, path = self._limit_files[0]
        limits = [(shown, read_text(path)), *self._ancestor_limits]
        interpret = interpret_v2 if self.location.version == 2 else interpret_v1
        return interpret(self.location.directory, files, limits, unreadable)

    def procs(self) -> list[int]:
        """Pids in the memory cgroup (``cgroup.procs``); empty when unreadable."""
        text = read_text(self._procs_file)
        return [int(p) for p in text.split() if p.isdigit()] if text else []
