"""Write dump bundles to the volume (SPEC §6).

A bundle is ``<dump_dir>/<UTC yyyymmddThhmmssZ>-<hostname>-<pid>-<trigger>/``;
``manifest.json`` is written last, by atomic rename, so a folder without one is
incomplete and never shown as a finished dump. Each file goes through
``<name>.tmp`` and a rename, so a reader never sees half a file. Listing,
retention and the folder lock live in :mod:`oomguard.retention`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from .errors import DumpInProgress, DumpVolumeError
from .retention import (
    LOCK,
    MANIFEST,
    SCHEMA,
    TMP_SUFFIX,
    BundleFile,
    BundleName,
    DumpInfo,
    enforce_retention,
    list_dumps,
    open_lock,
    parse_name,
    read_manifest,
    scan_files,
    try_lock,
)

__all__ = [
    "MANIFEST",
    "SCHEMA",
    "Bundle",
    "BundleFile",
    "BundleWriter",
    "DumpInfo",
    "disk_free",
    "finish_incomplete",
    "read_manifest",
]

logger = logging.getLogger(__name__)

#: check() refuses a volume with less free space than this (by default).
MIN_FREE_BYTES = 1024 * 1024
#: Each file write wants this much free beyond its own size: the directory entry,
#: the manifest still to come, and rounding to the filesystem's blocks.
WRITE_MARGIN = 64 * 1024
_TRIGGER_RE = re.compile(r"^[a-z][a-z_]*$")
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_CAUSES = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "not a directory",
    errno.EACCES: "permission denied",
    errno.ENOENT: "no such file or directory",
}
_PROTECTED = frozenset({"schema", "id", "files", "complete"})


def disk_free(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem (statvfs)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" or n >= 10 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _cause(exc: OSError) -> str:
    return _CAUSES.get(exc.errno or 0, exc.strerror or str(exc))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_name(name: str) -> str:
    # Hidden names are reserved for the lock, *.tmp for half-written files, the manifest for finish().
    if not name or "/" in name or "\0" in name or ".." in name or name.startswith(".") or name.endswith(TMP_SUFFIX):
        raise ValueError(f"invalid bundle file name {name!r}: must be a plain, non-hidden file name")
    if name == MANIFEST:
        raise ValueError(f"{MANIFEST} is written by finish()")
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``path.tmp``; on failure no ``.tmp`` is left."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # left by a killed writer
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask must not decide who reads a heap dump
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_manifest(folder: Path, doc: Mapping[str, object]) -> Path:
    data = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    # The data files' renames must be durable before the manifest says they exist.
    _fsync_dir(folder)
    _atomic_write(folder / MANIFEST, data)
    _fsync_dir(folder)
    return folder / MANIFEST


def _agent_version() -> str:
    from . import __version__  # lazily: the package imports modules that import this one

    return __version__


class Bundle:
    """One dump being written; get it from :meth:`BundleWriter.open`.

    Holds the folder's lock until :meth:`finish`, :meth:`abandon` or :meth:`close`.
    As a context manager it closes (leaves the bundle incomplete) unless finished.
    """

    def __init__(
        self,
        volume: Path,
        path: Path,
        lock_fd: int,
        *,
        trigger: str,
        pid: int,
        hostname: str,
        created_at: str,
        free_space: Callable[[Path], int],
        on_finish: Callable[[Path], None],
    ) -> None:
        self.id = path.name
        self.path = path
        self.trigger = trigger
        self.pid = pid
        self.hostname = hostname
        self.created_at = created_at
        self._volume = volume
        self._lock_fd: int | None = lock_fd
        self._free_space = free_space
        self._on_finish = on_finish
        self._files: dict[str, BundleFile] = {}

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, open={self._lock_fd is not None})"

    def __enter__(self) -> Bundle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._lock_fd is not None:
            self.close()

    @property
    def files(self) -> tuple[BundleFile, ...]:
        """The files recorded so far, in the order they were first written."""
        return tuple(self._files.values())

    def _error(self, name: str, cause: str) -> DumpVolumeError:
        return DumpVolumeError(f"dump volume {self._volume}: cannot write {self.id}/{name}: {cause}")

    def _require_open(self) -> None:
        if self._lock_fd is None:
            raise ValueError(f"bundle {self.id} is already finished, abandoned or closed")

    def _ensure_room(self, name: str, size: int) -> None:
        try:
            free = self._free_space(self.path)
        except OSError as exc:
            raise self._error(name, _cause(exc)) from exc
        if free < size + WRITE_MARGIN:
            raise self._error(name, f"no space left ({_human(free)} free, {_human(size + WRITE_MARGIN)} needed)")

    def file_path(self, name: str) -> Path:
        """A path inside the bundle for an external writer (memray); register it with :meth:`add_file`.

        Raises:
            ValueError: ``name`` is not a plain file name (``/``, ``..``, hidden, ``.tmp``, the manifest).
        """
        return self.path / _check_name(name)

    def write_bytes(self, name: str, data: bytes, kind: str) -> BundleFile:
        """Write a file atomically (mode 0600) and record it.

        Raises:
            DumpVolumeError: not enough free space, or the write failed (no ``.tmp`` is left).
            ValueError: a bad name, or the bundle is no longer open.
        """
        self._require_open()
        path = self.file_path(name)
        self._ensure_room(name, len(data))
        try:
            _atomic_write(path, data)
        except OSError as exc:
            raise self._error(name, _cause(exc)) from exc
        return self._record(BundleFile(name, kind, len(data)))

    def write_text(self, name: str, text: str, kind: str = "text") -> BundleFile:
        """:meth:`write_bytes` of UTF-8 text."""
        return self.write_bytes(name, text.encode("utf-8"), kind)

    def write_json(self, name: str, value: object, kind: str = "json") -> BundleFile:
        """:meth:`write_bytes` of ``value`` as indented JSON."""
        return self.write_bytes(name, json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8") + b"\n", kind)

    def add_file(self, name: str, kind: str) -> BundleFile:
        """Record a file someone else wrote at :meth:`file_path` ``(name)``; makes it 0600.

        Raises:
            DumpVolumeError: the file is missing or cannot be changed.
        """
        self._require_open()
        path = self.file_path(name)
        try:
            os.chmod(path, 0o600, follow_symlinks=False)
            size = os.stat(path, follow_symlinks=False).st_size
        except OSError as exc:
            raise DumpVolumeError(f"dump volume {self._volume}: cannot add {self.id}/{name}: {_cause(exc)}") from exc
        return self._record(BundleFile(name, kind, size))

    def _record(self, file: BundleFile) -> BundleFile:
        self._files[file.name] = file
        return file

    def finish(self, manifest: Mapping[str, object], *, complete: bool = True) -> Path:
        """Write ``manifest.json`` last (atomic, fsync'ed) and release the lock, even on failure.

        ``manifest`` holds the caller's fields (``memory``, ``verdict``, ``suspects``…);
        ``schema``, ``id``, ``files`` and ``complete`` always come from the bundle.

        Returns:
            The manifest's path.

        Raises:
            DumpVolumeError: the manifest could not be written; the bundle stays incomplete.
        """
        self._require_open()
        try:
            doc: dict[str, object] = {
                "schema": SCHEMA,
                "id": self.id,
                "created_at": self.created_at,
                "trigger": self.trigger,
                "complete": complete,
                "pid": self.pid,
                "hostname": self.hostname,
                "agent_version": _agent_version(),
            }
            doc.update((k, v) for k, v in manifest.items() if k not in _PROTECTED)
            doc["files"] = [{"name": f.name, "kind": f.kind, "bytes": f.bytes} for f in self._files.values()]
            self._ensure_room(MANIFEST, 0)
            try:
                path = _write_manifest(self.path, doc)
            except OSError as exc:
                raise self._error(MANIFEST, _cause(exc)) from exc
        finally:
            self._release()
        self._on_finish(self.path)
        return path

    def abandon(self) -> None:
        """Remove the whole folder (an armed capture that never led to a dump) and release the lock.

        Raises:
            DumpVolumeError: the folder could not be removed.
        """
        self._require_open()
        try:
            shutil.rmtree(self.path, ignore_errors=True)  # under the lock: nobody else is in here
        finally:
            self._release(unlink=False)
        if os.path.lexists(self.path):
            raise DumpVolumeError(f"dump volume {self._volume}: cannot remove {self.id}")

    def close(self) -> None:
        """Release the lock without a manifest: the bundle stays incomplete. A no-op once closed."""
        if self._lock_fd is not None:
            self._release()

    def forget_after_fork(self) -> None:
        """In a forked child: drop this copy of the lock fd, leaving the parent's lock and files alone."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _release(self, *, unlink: bool = True) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        if unlink:  # a finished folder needs no lock file; whoever needs one creates it
            with contextlib.suppress(OSError):
                os.unlink(self.path / LOCK)
        os.close(fd)


class BundleWriter:
    """Creates bundles in ``dump_dir`` and keeps it within its retention limits.

    Args:
        dump_dir: the dump volume (created 0700 with its parents if missing).
        max_dumps: most bundle folders kept.
        max_bytes: most bytes kept across bundle folders.
        hostname: for folder names and manifests; default ``socket.gethostname()``.
        clock: wall-clock seconds, for folder names and ``created_at``.
        min_free_bytes: :meth:`check` refuses a volume with less free space.
        free_space: free bytes on a path's filesystem; default :func:`disk_free` (statvfs).
    """

    def __init__(
        self,
        dump_dir: Path,
        *,
        max_dumps: int = 20,
        max_bytes: int = 2 * 1024**3,
        hostname: str | None = None,
        clock: Callable[[], float] = time.time,
        min_free_bytes: int = MIN_FREE_BYTES,
        free_space: Callable[[Path], int] = disk_free,
    ) -> None:
        self.dump_dir = Path(dump_dir)
        self.max_dumps = max_dumps
        self.max_bytes = max_bytes
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self._name_host = _HOST_UNSAFE.sub("_", self.hostname)[:63] or "unknown"
        self._clock = clock
        self._min_free = min_free_bytes
        self._free_space = free_space

    def _error(self, cause: str) -> DumpVolumeError:
        return DumpVolumeError(f"dump volume {self.dump_dir}: {cause}")

    def check(self) -> None:
        """Verify the volume can take a bundle; create it (0700, with parents) if missing.

        Raises:
            DumpVolumeError: it cannot be created, is not a directory, is read-only
                (found by really writing: root ignores permission bits) or is nearly full.
        """
        path = self.dump_dir
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            try:
                path.mkdir(mode=0o700, parents=True)
                os.chmod(path, 0o700)  # mkdir's mode passes through the umask
                st = os.stat(path)
            except FileExistsError:  # another process created it meanwhile
                st = os.stat(path)
            except OSError as exc:
                raise self._error(f"cannot create: {_cause(exc)}") from exc
        except OSError as exc:
            raise self._error(f"cannot access: {_cause(exc)}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise self._error("not a directory")
        try:
            free = self._free_space(path)
        except OSError as exc:
            raise self._error(f"cannot stat the file system: {_cause(exc)}") from exc
        probe = path / f".oomguard-probe-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise self._error(_cause(exc) + (f" ({_human(free)} free)" if exc.errno == errno.ENOSPC else "")) from exc
        with contextlib.suppress(OSError):
            os.unlink(probe)
        if free < self._min_free:
            raise self._error(f"no space left ({_human(free)} free, at least {_human(self._min_free)} needed)")

    def open(self, trigger: str, pid: int) -> Bundle:
        """Create and lock a new bundle folder, after running retention.

        Args:
            trigger: why (``threshold``, ``predicted``, ``manual``, ``signal``, ``oom``); ``[a-z_]`` only.
            pid: the process the bundle is about.

        Raises:
            DumpVolumeError: the volume cannot take a bundle (see :meth:`check`).
            ValueError: ``trigger`` is not a lowercase word.
        """
        if not _TRIGGER_RE.match(trigger):
            raise ValueError(f"invalid trigger {trigger!r}: lowercase letters and _ only")
        # Retention first, leaving room for the new bundle: on a volume full of old
        # dumps, that is what lets the check below pass.
        self._retain_quietly(None, reserve=1)
        self.check()
        now = self._clock()
        name = BundleName(time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)), self._name_host, pid, trigger, 1)
        staging, fd = self._stage()
        try:
            path = self._claim(staging, name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            os.close(fd)
            raise
        return Bundle(
            self.dump_dir,
            path,
            fd,
            trigger=trigger,
            pid=pid,
            hostname=self.hostname,
            created_at=_iso(now),
            free_space=self._free_space,
            on_finish=self._retain_quietly,
        )

    def _stage(self) -> tuple[Path, int]:
        """A hidden, locked, empty folder to be renamed into place."""
        for _ in range(10):
            staging = self.dump_dir / f".oomguard-new-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                os.mkdir(staging, 0o700)
                os.chmod(staging, 0o700)  # mkdir's mode passes through the umask
            except OSError as exc:
                raise self._error(f"cannot create a bundle folder: {_cause(exc)}") from exc
            fd = open_lock(staging, create=True)
            # Retention may have swept the folder before our lock existed: then start again.
            if fd is not None and try_lock(fd) and self._same_file(fd, staging / LOCK):
                return staging, fd
            if fd is not None:
                os.close(fd)
        raise self._error("cannot lock a new bundle folder")

    @staticmethod
    def _same_file(fd: int, path: Path) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            return False

    def _claim(self, staging: Path, name: BundleName) -> Path:
        """Rename ``staging`` to the first free name: ``name``, ``name-2``, ``name-3``…"""
        for seq in range(1, 1000):
            target = self.dump_dir / BundleName(name.stamp, name.hostname, name.pid, name.trigger, seq).format()
            if os.path.lexists(target):
                continue
            try:
                # rename() would replace an *empty* directory; ours are never empty (they hold
                # .lock), so losing a race shows up as ENOTEMPTY/EEXIST and we try the next name.
                os.rename(staging, target)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    continue
                raise self._error(f"cannot create a bundle folder: {_cause(exc)}") from exc
            return target
        raise self._error(f"no free folder name for {name.format()}")

    def _retain_quietly(self, keep: Path | None, reserve: int = 0) -> None:
        # Retention frees space but must never cost the dump itself.
        try:
            enforce_retention(
                self.dump_dir, max_dumps=max(self.max_dumps - reserve, 0), max_bytes=self.max_bytes, keep=keep
            )
        except OSError:
            logger.warning("oomguard: retention failed in %s", self.dump_dir, exc_info=True)

    def enforce_retention(self, keep: Path | None = None) -> list[Path]:
        """Delete the oldest bundles until within ``max_dumps`` and ``max_bytes``.

        Folders held by a live writer and ``keep`` are never deleted.

        Returns:
            The folders removed.
        """
        return enforce_retention(self.dump_dir, max_dumps=self.max_dumps, max_bytes=self.max_bytes, keep=keep)

    def list(self) -> list[DumpInfo]:
        """Every bundle folder, newest first, complete or not; other entries are ignored."""
        return list_dumps(self.dump_dir)


def finish_incomplete(info: DumpInfo, manifest: Mapping[str, object], *, writer_hostname: str | None = None) -> Path:
    """Post-mortem: write the manifest of a folder a killed process left without one.

    The manifest says ``complete: false`` and ``trigger: "oom"`` and lists the
    files found (``memray.bin`` as kind ``memray``); stale ``.tmp`` files are
    removed. ``hostname``, ``pid`` and ``created_at`` come from the folder name;
    ``writer_hostname`` (default: this host) is used only if the name has none.
    A folder that already has a valid manifest is left as it is.

    Returns:
        The manifest's path.

    Raises:
        DumpInProgress: a live writer still holds the folder.
        DumpVolumeError: the folder is gone or the manifest cannot be written.
    """
    folder = info.path
    volume = folder.parent
    fd = open_lock(folder, create=True)
    if fd is None:
        raise DumpVolumeError(f"dump volume {volume}: cannot lock {info.id} (gone, or read-only)")
    if not try_lock(fd):
        os.close(fd)
        raise DumpInProgress(f"dump {info.id} is still being written by a live process")
    try:
        if read_manifest(folder) is not None:
            return folder / MANIFEST
        name = parse_name(info.id)
        with contextlib.suppress(OSError):
            for leftover in folder.glob("*" + TMP_SUFFIX):
                leftover.unlink()
        files, _ = scan_files(folder)
        doc: dict[str, object] = {
            "schema": SCHEMA,
            "id": info.id,
            "created_at": name.created_at if name else info.created_at,
            "trigger": "oom",
            "complete": False,
            "pid": name.pid if name else info.pid,
            "hostname": name.hostname if name else (writer_hostname or socket.gethostname()),
            "agent_version": _agent_version(),
        }
        doc.update((k, v) for k, v in manifest.items() if k not in _PROTECTED | {"trigger"})
        doc["files"] = [{"name": f.name, "kind": f.kind, "bytes": f.bytes} for f in files]
        try:
            return _write_manifest(folder, doc)
        except OSError as exc:
            raise DumpVolumeError(f"dump volume {volume}: cannot write {info.id}/{MANIFEST}: {_cause(exc)}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(folder / LOCK)
        os.close(fd)
