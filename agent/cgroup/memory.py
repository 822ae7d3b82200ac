"""The memory cgroup's numbers as one frozen value, interpreted from v1 or v2 files.

v1 names are mapped to the v2 meanings (``total_rss`` → anon, ``total_cache`` →
file, …). Interpretation is pure; :mod:`oomguard.cgroup.reader` does the reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .parse import Pressure, parse_flat_keyed, parse_limit, parse_pressure, parse_single_int

__all__ = ["CgroupMemory", "MemoryEvents", "interpret_v1", "interpret_v2"]


@dataclass(frozen=True, slots=True)
class MemoryEvents:
    """Cumulative counters: v2 ``memory.events``; v1 ``failcnt`` (as max) and ``oom_control``."""

    high: int | None = None
    max: int | None = None
    oom: int | None = None
    oom_kill: int | None = None


@dataclass(frozen=True, slots=True)
class CgroupMemory:
    """One reading of a memory cgroup. ``None`` means the kernel did not say."""

    version: int
    directory: str
    limit_bytes: int | None
    """Effective limit: the lowest up the ancestors; None when unlimited."""
    limit_source: str | None
    """The file (and key) that set the effective limit."""
    usage_bytes: int | None
    anon_bytes: int | None
    file_bytes: int | None
    active_file_bytes: int | None
    inactive_file_bytes: int | None
    shmem_bytes: int | None
    slab_bytes: int | None
    kernel_stack_bytes: int | None
    sock_bytes: int | None
    events: MemoryEvents
    pressure: Pressure | None
    pids_current: int | None
    pids_max: int | None
    unreadable: tuple[str, ...] = ()
    """Files that could not be read: the reading is partial."""

    @property
    def working_set_bytes(self) -> int | None:
        """usage - inactive_file, as kubelet and cAdvisor compute it."""
        if self.usage_bytes is None:
            return None
        return max(0, self.usage_bytes - (self.inactive_file_bytes or 0))


def _lowest(limits: list[tuple[str, int | None]]) -> tuple[int | None, str | None]:
    best: tuple[int | None, str | None] = (None, None)
    for source, value in limits:
        if value is not None and (best[0] is None or value < best[0]):
            best = (value, source)
    return best


def _pids(files: Mapping[str, str | None]) -> tuple[int | None, int | None]:
    current = files.get("pids.current")
    maximum = files.get("pids.max")
    return (
        parse_single_int(current) if current else None,
        parse_limit(maximum) if maximum else None,
    )


def interpret_v2(
    directory: str,
    files: Mapping[str, str | None],
    ancestor_limits: list[tuple[str, str | None]],
    unreadable: tuple[str, ...] = (),
) -> CgroupMemory:
    """Interpret v2 files (``memory.current``, ``memory.stat``, …) of ``directory``.

    Args:
        directory: the cgroup directory, for the record.
        files: file name → text (None when unreadable).
        ancestor_limits: (path of a ``memory.max``, its text) from the leaf up to the mount.
        unreadable: names of files that failed to read.
    """
    stat = parse_flat_keyed(files.get("memory.stat") or "")
    events = parse_flat_keyed(files.get("memory.events") or "")
    current = files.get("memory.current")
    limit, source = _lowest([(p, parse_limit(t)) for p, t in ancestor_limits if t is not None])
    pressure_text = files.get("memory.pressure")
    pids_current, pids_max = _pids(files)
    slab = stat.get("slab")
    if slab is None and "slab_reclaimable" in stat:
        slab = stat["slab_reclaimable"] + stat.get("slab_unreclaimable", 0)
    return CgroupMemory(
        version=2,
        directory=directory,
        limit_bytes=limit,
        limit_source=source,
        usage_bytes=parse_single_int(current) if current else None,
        anon_bytes=stat.get("anon"),
        file_bytes=stat.get("file"),
        active_file_bytes=stat.get("active_file"),
        inactive_file_bytes=stat.get("inactive_file"),
        shmem_bytes=stat.get("shmem"),
        slab_bytes=slab,
        kernel_stack_bytes=stat.get("kernel_stack"),
        sock_bytes=stat.get("sock"),
        events=MemoryEvents(
            high=events.get("high"),
            max=events.get("max"),
            oom=events.get("oom"),
            oom_kill=events.get("oom_kill"),
        ),
        pressure=parse_pressure(pressure_text) if pressure_text else None,
        pids_current=pids_current,
        pids_max=pids_max,
        unreadable=unreadable,
    )


def interpret_v1(
    directory: str,
    files: Mapping[str, str | None],
    ancestor_limits: list[tuple[str, str | None]],
    unreadable: tuple[str, ...] = (),
) -> CgroupMemory:
    """Interpret v1 files (``memory.usage_in_bytes``, ``memory.stat``, …) of ``directory``.

    ``total_*`` (hierarchical) keys are preferred; ``hierarchical_memory_limit``
    covers ancestors that are not visible inside the container.
    """
    stat = parse_flat_keyed(files.get("memory.stat") or "")

    def pick(name: str) -> int | None:
        return stat.get("total_" + name, stat.get(name))

    oom_control = parse_flat_keyed(files.get("memory.oom_control") or "")
    usage = files.get("memory.usage_in_bytes")
    failcnt = files.get("memory.failcnt")
    limits = [(p, parse_limit(t)) for p, t in ancestor_limits if t is not None]
    if "hierarchical_memory_limit" in stat:
        limits.append(
            (
                f"{directory}/memory.stat:hierarchical_memory_limit",
                parse_limit(str(stat["hierarchical_memory_limit"])),
            )
        )
    limit, source = _lowest(limits)
    tcp = files.get("memory.kmem.tcp.usage_in_bytes")
    pids_current, pids_max = _pids(files)
    return CgroupMemory(
        version=1,
        directory=directory,
        limit_bytes=limit,
        limit_source=source,
        usage_bytes=parse_single_int(usage) if usage else None,
        anon_bytes=pick("rss"),
        file_bytes=pick("cache"),
        active_file_bytes=pick("active_file"),
        inactive_file_bytes=pick("inactive_file"),
        shmem_bytes=pick("shmem"),
        slab_bytes=None,
        kernel_stack_bytes=None,
        sock_bytes=parse_single_int(tcp) if tcp else None,
        events=MemoryEvents(
            max=parse_single_int(failcnt) if failcnt else None,
            oom_kill=oom_control.get("oom_kill"),
        ),
        pressure=None,
        pids_current=pids_current,
        pids_max=pids_max,
        unreadable=unreadable,
    )
