"""What is on the dump volume: bundle folder names, listings and retention (SPEC §6).

Every process that touches the volume follows one rule: a bundle folder holds a
hidden ``.lock`` file that its writer keeps ``flock``-ed (exclusive) until the
bundle is finished. The kernel drops the lock when the writer dies, even by
SIGKILL, so "the lock can be taken" means "nobody is writing this", whatever
state the folder was left in. Retention and post-mortem take that same lock
before they delete or finish a folder, so two of them never work on one folder.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LOCK",
    "MANIFEST",
    "SCHEMA",
    "BundleFile",
    "BundleName",
    "DumpInfo",
    "enforce_retention",
    "is_locked",
    "kind_for",
    "list_dumps",
    "parse_name",
    "read_manifest",
    "scan_files",
]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA = 1
LOCK = ".lock"
TMP_SUFFIX = ".tmp"

# Hostnames may contain dashes, so the pid and the trigger are anchored from the right;
# a trigger is letters and underscores only, which keeps the optional "-<n>" suffix unambiguous.
_NAME_RE = re.compile(
    r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<hostname>.+)-(?P<pid>\d+)-(?P<trigger>[a-z][a-z_]*)(?:-(?P<seq>\d+))?$"
)
# A writer builds its folder under this hidden name, locks it, then renames it into place:
# a bundle folder is never visible unlocked while it is being created.
STAGING_RE = re.compile(r"^\.oomguard-new-\d+-[0-9a-f]{12}$")
# Staging folders are removed only when unlocked and older than this: a writer
# creates its lock within microseconds of the folder, this is a wide safety margin.
_STAGING_GRACE_S = 60.0
_MANIFEST_MAX = 16 * 1024 * 1024
_KINDS = {".json": "json", ".txt": "text", ".log": "text", ".md": "text"}


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file of a bundle, as listed in the manifest's ``files``."""

    name: str
    kind: str
    bytes: int


@dataclass(frozen=True, slots=True)
class BundleName:
    """The parts of a bundle folder name ``<stamp>-<hostname>-<pid>-<trigger>[-<n>]``."""

    stamp: str
    hostname: str
    pid: int
    trigger: str
    seq: int

    @property
    def created_at(self) -> str:
        """The stamp as UTC ISO 8601 (``2024-01-02T03:04:05Z``)."""
        s = self.stamp
        return f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}Z"

    def format(self) -> str:
        """The folder name these parts make."""
        base = f"{self.stamp}-{self.hostname}-{self.pid}-{self.trigger}"
        return base if self.seq <= 1 else f"{base}-{self.seq}"


def parse_name(name: str) -> BundleName | None:
    """Split a bundle folder name into its parts; None when it is not one."""
    match = _NAME_RE.match(name)
    if match is None:
        return None
    try:
        calendar.timegm(time.strptime(match["stamp"], "%Y%m%dT%H%M%SZ"))
    except ValueError:  # 20241399T… has the shape but is no date
        return None
    return BundleName(match["stamp"], match["hostname"], int(match["pid"]), match["trigger"], int(match["seq"] or 1))


@dataclass(frozen=True, slots=True)
class DumpInfo:
    """One bundle folder in the dump directory, for listings (CLI, admin API)."""

    id: str
    path: Path
    complete: bool
    has_manifest: bool
    trigger: str | None
    created_at: str | None
    pid: int | None
    bytes: int
    files: tuple[BundleFile, ...]
    in_progress: bool


def kind_for(name: str) -> str:
    """A file's kind guessed from its name (for folders a killed process left behind)."""
    if name.startswith("memray") and name.endswith(".bin"):
        return "memray"
    return _KINDS.get(os.path.splitext(name)[1], "binary")


def read_manifest(path: Path) -> dict[str, object] | None:
    """The manifest of the bundle folder ``path``; None when absent, unreadable or corrupt."""
    try:
        with open(path / MANIFEST, "rb") as fh:
            data = fh.read(_MANIFEST_MAX + 1)
    except OSError:
        return None
    if len(data) > _MANIFEST_MAX:
        return None
    try:
        value = json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return value if isinstance(value, dict) else None


def scan_files(path: Path) -> tuple[tuple[BundleFile, ...], int]:
    """The data files of a folder (no manifest, hidden or ``.tmp`` files) and its total size."""
    files: list[BundleFile] = []
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while we looked
                    continue
                total += st.st_size
                name = entry.name
                if stat.S_ISREG(st.st_mode) and not (
                    name == MANIFEST or name.startswith(".") or name.endswith(TMP_SUFFIX)
                ):
                    files.append(BundleFile(name, kind_for(name), st.st_size))
    except (FileNotFoundError, NotADirectoryError):
        pass
    return tuple(sorted(files, key=lambda f: f.name)), total


def _manifest_files(value: object) -> tuple[BundleFile, ...] | None:
    if not isinstance(value, list):
        return None
    files = []
    for item in value:
        if not isinstance(item, dict):
            return None
        name, kind, size = item.get("name"), item.get("kind"), item.get("bytes")
        if not isinstance(name, str) or not isinstance(kind, str) or not isinstance(size, int):
            return None
        files.append(BundleFile(name, kind, size))
    return tuple(files)


def open_lock(folder: Path, *, create: bool) -> int | None:
    """An fd on ``folder/.lock`` (created 0600 if ``create``); None when it cannot be opened.

    Read-only is enough for ``flock`` and, unlike a writable fd, does not stop the
    volume from being remounted read-only.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        return os.open(folder / LOCK, flags, 0o600)
    except OSError:
        return None


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False when someone holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_locked(folder: Path) -> bool:
    """True while a live writer holds ``folder``'s lock."""
    fd = open_lock(folder, create=False)
    if fd is None:
        return False
    try:
        return not try_lock(fd)  # closing the fd below releases a lock we just took
    finally:
        os.close(fd)


def _bundle_dirs(dump_dir: Path) -> list[tuple[BundleName, Path]]:
    """Bundle folders, oldest first; anything else in the directory is not ours to touch."""
    found = []
    try:
        with os.scandir(dump_dir) as entries:
            for entry in entries:
                name = parse_name(entry.name)
                with contextlib.suppress(OSError):
                    if name is not None and entry.is_dir(follow_symlinks=False):
                        found.append((name, Path(entry.path)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found.sort(key=lambda item: (item[0].stamp, item[0].seq, item[1].name))
    return found


def _describe(name: BundleName, path: Path) -> DumpInfo | None:
    in_progress = is_locked(path)
    manifest = read_manifest(path)
    scanned, total = scan_files(path)
    if not os.path.isdir(path):  # removed while we looked
        return None
    if manifest is None:
        return DumpInfo(
            path.name, path, False, False, name.trigger, name.created_at, name.pid, total, scanned, in_progress
        )
    trigger, created_at, pid = manifest.get("trigger"), manifest.get("created_at"), manifest.get("pid")
    return DumpInfo(
        id=path.name,
        path=path,
        complete=manifest.get("complete") is True,
        has_manifest=True,
        trigger=trigger if isinstance(trigger, str) else name.trigger,
        created_at=created_at if isinstance(created_at, str) else name.created_at,
        pid=pid if isinstance(pid, int) else name.pid,
        bytes=total,
        files=_manifest_files(manifest.get("files")) or scanned,
        in_progress=in_progress,
    )


def list_dumps(dump_dir: Path) -> list[DumpInfo]:
    """Every bundle folder in ``dump_dir``, newest first, complete or not.

    Unrelated files and folders are ignored; a missing directory lists as empty.
    """
    infos = (_describe(name, path) for name, path in reversed(_bundle_dirs(dump_dir)))
    return [info for info in infos if info is not None]


def remove_locked(path: Path) -> bool | None:
    """Delete a folder nobody is writing, holding its lock meanwhile.

    Returns:
        True when removed, False when a live writer holds it or it cannot be
        removed, None when it had already disappeared.
    """
    fd = open_lock(path, create=True)
    if fd is None:
        return None if not os.path.lexists(path) else False
    try:
        if not try_lock(fd):
            return False
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)
    if os.path.lexists(path):
        logger.warning("oomguard: could not remove old dump %s", path)
        return False
    return True


def _remove_stale_staging(dump_dir: Path) -> None:
    now = time.time()
    stale: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(dump_dir) as entries:
        stale = [
            Path(e.path)
            for e in entries
            if STAGING_RE.match(e.name) and now - e.stat(follow_symlinks=False).st_mtime > _STAGING_GRACE_S
        ]
    for path in stale:
        remove_locked(path)


def enforce_retention(dump_dir: Path, *, max_dumps: int, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the oldest bundle folders until at most ``max_dumps`` and ``max_bytes`` remain.

    A folder a live writer holds and ``keep`` are never deleted (they still count),
    nor is anything whose name is not a bundle name.

    Returns:
        The folders removed, oldest first.
    """
    _remove_stale_staging(dump_dir)
    folders = _bundle_dirs(dump_dir)
    sizes = {path: scan_files(path)[1] for _, path in folders}
    count, total = len(folders), sum(sizes.values())
    removed: list[Path] = []
    for _, path in folders:
        if count <= max_dumps and total <= max_bytes:
            break
        if keep is not None and path.name == keep.name:  # keep may be spelled relative or absolute
            continue
        outcome = remove_locked(path)
        if outcome is False:
            continue
        count, total = count - 1, total - sizes[path]
        if outcome:
            removed.append(path)
    return removed
