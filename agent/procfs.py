"""Process memory from ``/proc/<pid>``: this process and every pid of its cgroup."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .cgroup.reader import read_text

__all__ = [
    "AGENT_THREAD_COMM",
    "ProcessMemory",
    "parse_status",
    "read_process",
    "read_processes",
    "runs_agent",
]

#: The kernel-visible name (``/proc/<pid>/task/<tid>/comm``) of the sampler thread.
#: Another process can tell which pids run oomguard by looking for it.
AGENT_THREAD_COMM = "oomguard-agent"

_STATUS_KEYS = {
    "VmRSS": "rss",
    "RssAnon": "anon",
    "RssFile": "file",
    "RssShmem": "shmem",
    "VmSize": "virtual",
    "Threads": "threads",
}


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """One process's memory. ``None``: the kernel did not say (gone, or no permission)."""

    pid: int
    rss_bytes: int | None
    anon_bytes: int | None
    file_bytes: int | None
    shmem_bytes: int | None
    virtual_bytes: int | None
    threads: int | None
    fds: int | None
    name: str = ""
    runs_agent: bool | None = None


def parse_status(text: str) -> dict[str, int]:
    """The memory and thread lines of ``/proc/<pid>/status`` (kB → bytes)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        field = _STATUS_KEYS.get(key)
        if field is None:
            continue
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[field] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return values


def _status_name(text: str) -> str:
    first = text.split("\n", 1)[0]
    return first.partition(":")[2].strip() if first.startswith("Name:") else ""


def _count_fds(proc: Path) -> int | None:
    try:
        return len(os.listdir(proc / "fd"))
    except OSError:
        return None


def runs_agent(proc: Path) -> bool | None:
    """Whether the process at ``proc`` (``/proc/<pid>``) has an oomguard sampler thread."""
    try:
        tids = os.listdir(proc / "task")
    except OSError:
        return None
    for tid in tids:
        comm = read_text(proc / "task" / tid / "comm")
        if comm is not None and comm.strip() == AGENT_THREAD_COMM:
            return True
    return False


def read_process(pid: int | None = None, proc_root: Path = Path("/proc"), *, scan_agent: bool = False) -> ProcessMemory:
    """Read one process; ``pid=None`` is this process. Never raises.

    Args:
        pid: the process id, or None for ``self``.
        proc_root: where procfs is mounted.
        scan_agent: also look for the oomguard thread (costs one read per thread).
    """
    proc = proc_root / (str(pid) if pid is not None else "self")
    text = read_text(proc / "status") or ""
    values = parse_status(text)
    return ProcessMemory(
        pid=pid if pid is not None else os.getpid(),
        rss_bytes=values.get("rss"),
        anon_bytes=values.get("anon"),
        file_bytes=values.get("file"),
        shmem_bytes=values.get("shmem"),
        virtual_bytes=values.get("virtual"),
        threads=values.get("threads"),
        fds=_count_fds(proc),
        name=_status_name(text),
        runs_agent=runs_agent(proc) if scan_agent else None,
    )


def read_processes(pids: list[int], proc_root: Path = Path("/proc")) -> list[ProcessMemory]:
    """Every pid of a cgroup, largest RSS first, with which ones run the agent."""
    table = [read_process(pid, proc_root, scan_agent=True) for pid in pids]
    table.sort(key=lambda p: p.rss_bytes or 0, reverse=True)
    return table
