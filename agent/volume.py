"""Is the dump directory on a real volume, or on the container's writable layer?"""

from __future__ import annotations

import os
from pathlib import Path

from .cgroup.reader import read_text

__all__ = ["filesystem_of", "writable_layer_warning"]

#: Filesystems that back a container's own writable layer: lost when it is replaced.
_LAYER_FILESYSTEMS = frozenset({"overlay", "aufs", "fuse-overlayfs"})


def filesystem_of(path: Path, mountinfo: str) -> tuple[str, str] | None:
    """(mount point, fstype) of the mount holding ``path`` (longest matching mount point)."""
    best: tuple[str, str] | None = None
    target = str(path)
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        point = fields[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, tail[0])
    return best


def writable_layer_warning(dump_dir: Path, proc: Path = Path("/proc/self")) -> str | None:
    """A warning when ``dump_dir`` sits on an overlay (container layer); None when fine or unknown."""
    path = Path(os.path.abspath(dump_dir))
    while not path.exists() and path != path.parent:
        path = path.parent
    mountinfo = read_text(proc / "mountinfo")
    found = filesystem_of(path.resolve(), mountinfo) if mountinfo else None
    if found is None or found[1] not in _LAYER_FILESYSTEMS:
        return None
    return (
        f"OOMGUARD_DUMP_DIR={dump_dir} is on the container's writable layer ({found[1]} at {found[0]}): "
        "bundles are lost when the container is replaced; mount a volume there"
    )
