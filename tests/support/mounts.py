"""Real tmpfs mounts for volume tests: read-only, tiny, full (root only)."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_MS_RDONLY, _MS_REMOUNT, _MNT_DETACH = 1, 32, 2
_libc = ctypes.CDLL(None, use_errno=True)


class Tmpfs:
    """A tmpfs mounted at ``path`` with ``mount(2)``, so a failure has an errno, not a message to parse."""

    def __init__(self, path: Path, options: str) -> None:
        self.path = path
        self.options = options

    def mount(self, flags: int = 0) -> None:
        rc = _libc.mount(b"tmpfs", os.fsencode(self.path), b"tmpfs", flags, self.options.encode())
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount tmpfs on {self.path} ({self.options}): {os.strerror(err)}")

    def remount_read_only(self) -> None:
        """``mount -o remount,ro``."""
        self.mount(_MS_REMOUNT | _MS_RDONLY)

    def unmount(self) -> None:
        """Unmount, lazily if something still holds it, so no mount outlives the test."""
        if _libc.umount2(os.fsencode(self.path), 0) != 0:
            assert _libc.umount2(os.fsencode(self.path), _MNT_DETACH) == 0, os.strerror(ctypes.get_errno())


MountFn = Callable[..., Tmpfs]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[MountFn]:
    """``tmpfs(name, size=..., read_only=...)`` mounts a fresh tmpfs at ``tmp_path/name``."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Tmpfs] = []

    def mount(name: str, *, size: str, read_only: bool = False) -> Tmpfs:
        target = tmp_path / name
        target.mkdir()
        fs = Tmpfs(target, f"size={size},mode=0700")
        try:
            fs.mount(_MS_RDONLY if read_only else 0)
        except OSError as exc:
            if exc.errno == errno.EPERM:
                pytest.skip(f"mount(2) is not permitted here (EPERM): {exc}")
            raise
        mounted.append(fs)
        return fs

    try:
        yield mount
    finally:
        for fs in reversed(mounted):
            fs.unmount()
