"""Find the process's memory cgroup directory from ``/proc/<pid>/cgroup`` and mountinfo.

Pure: the parsers take text and :func:`locate_memory_cgroup` takes an ``exists``
predicate, so every layout (v1, v2, hybrid, namespaces, nested paths, a host path
that is not visible inside the container) is testable without a machine.

Path translation follows OpenJDK's ``CgroupSubsystemFactory`` / ``CgroupV1Controller``:
the cgroup path from ``/proc/self/cgroup`` is relative to the hierarchy's root, the
mount shows which part of the hierarchy (``root``) is mounted where (``mount_point``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = [
    "CgroupLine",
    "Location",
    "Mount",
    "locate_controller",
    "locate_memory_cgroup",
    "parse_mountinfo",
    "parse_proc_cgroup",
]


@dataclass(frozen=True, slots=True)
class CgroupLine:
    """One line of ``/proc/<pid>/cgroup``: ``hierarchy-id:controllers:path``."""

    hierarchy_id: int
    controllers: tuple[str, ...]
    path: str


@dataclass(frozen=True, slots=True)
class Mount:
    """The parts of one mountinfo line that cgroup discovery needs."""

    root: str
    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Location:
    """Where a controller's cgroup lives, as paths *inside* the filesystem root."""

    version: int
    directory: str
    mount_point: str
    cgroup_path: str
    fallback: bool
    """True when the cgroup path was not visible and the mount point was used instead."""


def parse_proc_cgroup(text: str) -> list[CgroupLine]:
    """Parse ``/proc/<pid>/cgroup``; malformed lines are skipped."""
    lines = []
    for raw in text.splitlines():
        parts = raw.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        controllers = tuple(c for c in parts[1].split(",") if c)
        lines.append(CgroupLine(int(parts[0]), controllers, parts[2]))
    return lines


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        digits = field[i + 1 : i + 4]
        if field[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse ``/proc/<pid>/mountinfo`` (proc(5)); keeps only cgroup and cgroup2 mounts."""
    mounts = []
    for raw in text.splitlines():
        left, sep, right = raw.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype = tail[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            Mount(
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                fstype=fstype,
                super_options=tuple(tail[2].split(",")),
            )
        )
    return mounts


def _join(mount_point: str, relative: str) -> str:
    relative = relative.strip("/")
    return str(PurePosixPath(mount_point) / relative) if relative else mount_point


def _translate(mount: Mount, cgroup_path: str, exists: Callable[[str], bool], version: int) -> Location:
    """Map a cgroup path onto the mount, falling back when the path is not visible."""
    root = mount.root
    if ".." in PurePosixPath(cgroup_path).parts:
        # Outside our cgroup namespace: only the mount itself is ours to read.
        candidate = None
    elif root == "/":
        candidate = _join(mount.mount_point, cgroup_path)
    elif cgroup_path == root:
        candidate = mount.mount_point
    elif cgroup_path.startswith(root.rstrip("/") + "/"):
        candidate = _join(mount.mount_point, cgroup_path[len(root.rstrip("/")) :])
    else:
        candidate = None
    if candidate is not None and exists(candidate):
        return Location(version, candidate, mount.mount_point, cgroup_path, False)
    # A host path that the container cannot see (v1 without cgroupns, nested
    # containers): try ever shorter tails of the path, then the mount root.
    parts = PurePosixPath(cgroup_path).parts[1:]
    if ".." in parts:
        parts = ()
    for start in range(1, len(parts)):
        tail = _join(mount.mount_point, "/".join(parts[start:]))
        if exists(tail):
            return Location(version, tail, mount.mount_point, cgroup_path, True)
    return Location(version, mount.mount_point, mount.mount_point, cgroup_path, candidate != mount.mount_point)


def locate_controller(
    controller: str,
    cgroup_lines: list[CgroupLine],
    mounts: list[Mount],
    exists: Callable[[str], bool],
) -> Location | None:
    """Find the directory of ``controller`` (``memory``, ``pids``) for a v1 or v2 hierarchy.

    A v1 mount carrying the controller wins (hybrid hosts keep memory on v1);
    otherwise the v2 unified hierarchy is used when it has the controller, or when
    it is the only hierarchy (``cgroup.controllers`` may be unreadable).
    """
    for line in cgroup_lines:
        if controller not in line.controllers:
            continue
        for mount in mounts:
            if mount.fstype == "cgroup" and controller in mount.super_options:
                return _translate(mount, line.path, exists, 1)
    unified = next((line for line in cgroup_lines if line.hierarchy_id == 0 and not line.controllers), None)
    v2_mounts = [m for m in mounts if m.fstype == "cgroup2"]
    if unified is None or not v2_mounts:
        return None
    has_v1 = any(m.fstype == "cgroup" for m in mounts)
    for mount in v2_mounts:
        location = _translate(mount, unified.path, exists, 2)
        probe = "memory.current" if controller == "memory" else f"{controller}.current"
        if exists(_join(location.directory, probe)) or exists(_join(mount.mount_point, probe)):
            return location
        if not has_v1 and len(v2_mounts) == 1:
            return location
    return None


def locate_memory_cgroup(cgroup_text: str, mountinfo_text: str, exists: Callable[[str], bool]) -> Location | None:
    """Locate the memory cgroup from the two proc files' text; None when there is none."""
    return locate_controller("memory", parse_proc_cgroup(cgroup_text), parse_mountinfo(mountinfo_text), exists)
