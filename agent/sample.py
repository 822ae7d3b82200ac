"""The :class:`Sample` value and how one is taken from the readers (SPEC §4)."""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .cgroup import CgroupMemory, CgroupReader, HostMemory, read_host_memory
from .errors import CgroupUnavailable
from .procfs import ProcessMemory, read_process

__all__ = ["PythonMemory", "Sample", "SampleSource", "Source"]


@dataclass(frozen=True, slots=True)
class PythonMemory:
    """What the interpreter knows about its own memory."""

    traced_bytes: int | None
    """``tracemalloc`` traced memory; None when tracemalloc is off."""
    traced_peak_bytes: int | None
    gc_collections: tuple[int, ...]
    """Cumulative collections per generation (``gc.get_stats()``)."""

    @classmethod
    def now(cls) -> PythonMemory:
        """Read this interpreter's counters (a few microseconds)."""
        traced = peak = None
        if tracemalloc.is_tracing():
            traced, peak = tracemalloc.get_traced_memory()
        return cls(traced, peak, tuple(g["collections"] for g in gc.get_stats()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of the container and the process."""

    time: float
    """Wall clock (seconds since the epoch)."""
    monotonic: float
    pid: int
    cgroup: CgroupMemory | None
    """None when no memory cgroup was found: the host is the container."""
    host: HostMemory | None
    """Host memory, read when the cgroup is missing or unlimited."""
    process: ProcessMemory
    python: PythonMemory | None
    """None when the sample is of another process."""
    requests_total: int | None = None
    """Requests served so far, from the integrations; None without one."""

    @property
    def limit_bytes(self) -> int | None:
        """Effective limit: the cgroup's, else host RAM."""
        cgroup_limit = self.cgroup.limit_bytes if self.cgroup is not None else None
        if cgroup_limit is not None and (self.host is None or cgroup_limit < self.host.total_bytes):
            return cgroup_limit
        return self.host.total_bytes if self.host is not None else None

    @property
    def limit_from_host(self) -> bool:
        """True when no cgroup limit applies and host RAM is the limit."""
        return self.limit_bytes is not None and (self.cgroup is None or self.cgroup.limit_bytes != self.limit_bytes)

    @property
    def usage_bytes(self) -> int | None:
        """Cgroup usage; host used memory when there is no cgroup."""
        if self.cgroup is not None:
            return self.cgroup.usage_bytes
        return self.host.used_bytes if self.host is not None else None

    @property
    def working_set_bytes(self) -> int | None:
        """usage - inactive_file: what the guard measures pressure on."""
        if self.cgroup is not None:
            return self.cgroup.working_set_bytes
        return self.usage_bytes

    @property
    def headroom_bytes(self) -> int | None:
        """How far the working set is from the effective limit."""
        limit, working_set = self.limit_bytes, self.working_set_bytes
        if limit is None or working_set is None:
            return None
        return limit - working_set

    @property
    def pressure(self) -> float | None:
        """Working set as a fraction of the effective limit."""
        limit, working_set = self.limit_bytes, self.working_set_bytes
        if not limit or working_set is None:
            return None
        return working_set / limit


class Source(Protocol):
    """Anything that takes samples (the real :class:`SampleSource`, or a test's fake)."""

    def take(self) -> Sample:
        """One sample."""
        ...


class SampleSource:
    """Takes samples of one process and its memory cgroup.

    Args:
        root: filesystem root the cgroup mounts are seen from.
        pid: the process to observe; None for this process (follows forks).
        proc_root: where procfs is mounted; for ``--root`` trees, ``<root>/proc``.
        requests: returns the integrations' request count, if any.
        clock, monotonic: injectable clocks.
    """

    def __init__(
        self,
        root: Path = Path("/"),
        pid: int | None = None,
        *,
        proc_root: Path | None = None,
        requests: Callable[[], int | None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.pid = pid
        self.proc_root = proc_root if proc_root is not None else root / "proc"
        self._requests = requests
        self._clock = clock
        self._monotonic = monotonic
        proc = self.proc_root / (str(pid) if pid is not None else "self")
        self.cgroup_reader: CgroupReader | None
        self.unavailable_reason: str | None = None
        try:
            self.cgroup_reader = CgroupReader(root, proc)
        except CgroupUnavailable as exc:
            self.cgroup_reader = None
            self.unavailable_reason = str(exc)
        self._host_at_start = read_host_memory(root)

    def take(self) -> Sample:
        """One sample. Never raises for unreadable kernel files: those give ``None`` fields."""
        cgroup = self.cgroup_reader.read() if self.cgroup_reader is not None else None
        host = self._host_at_start
        if cgroup is None:
            host = read_host_memory(self.root)  # usage comes from the host: read it fresh
        process = read_process(self.pid, self.proc_root)
        own = self.pid is None or self.pid == os.getpid()
        return Sample(
            time=self._clock(),
            monotonic=self._monotonic(),
            pid=process.pid,
            cgroup=cgroup,
            host=host,
            process=process,
            python=PythonMemory.now() if own else None,
            requests_total=self._requests() if self._requests is not None else None,
        )
