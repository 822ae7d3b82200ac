"""The bundle writer against real volumes: read-only, missing and full tmpfs mounts, and a SIGKILLed writer.

Mounting needs root (CAP_SYS_ADMIN); those tests skip only when that is really
missing. Every mount lives under the test's own ``tmp_path`` and is unmounted
in the fixture, so the tests run in parallel.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from oomguard.bundle import MANIFEST, BundleWriter, finish_incomplete
from oomguard.errors import DumpInProgress, DumpVolumeError
from tests.support.mounts import MountFn

KiB, MiB = 1024, 1024 * 1024


def tmp_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


def manifests(root: Path) -> list[Path]:
    return sorted(root.rglob(MANIFEST))


def fill(volume: Path) -> None:
    """Write zeros into ``volume`` until the kernel says ENOSPC."""
    fd = os.open(volume / "ballast", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        assert _write_until_error(fd, b"\0" * (64 * KiB)) == errno.ENOSPC
    finally:
        os.close(fd)


def _write_until_error(fd: int, chunk: bytes) -> int | None:
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        return exc.errno


@pytest.mark.parametrize("how", ["mounted-ro", "remounted-ro"])
def test_read_only_volume_is_refused(tmpfs: MountFn, how: str) -> None:
    fs = tmpfs("dumps", size="4m", read_only=how == "mounted-ro")
    writer = BundleWriter(fs.path, max_dumps=1, hostname="web-1")
    if how == "remounted-ro":
        bundle = writer.open("manual", 1)
        bundle.write_text("report.txt", "an earlier dump")
        bundle.finish({})
        fs.remount_read_only()
    before = sorted(fs.path.iterdir())

    with pytest.raises(DumpVolumeError, match=f"^dump volume {fs.path}: read-only file system$"):
        writer.check()
    with pytest.raises(DumpVolumeError, match="read-only file system"):
        writer.open("threshold", 2)  # its retention cannot delete the old dump either, and must not crash

    assert sorted(fs.path.iterdir()) == before
    assert [info.complete for info in writer.list()] == ([True] if how == "remounted-ro" else [])
    assert tmp_files(fs.path) == []


def test_volume_turning_read_only_mid_bundle_never_looks_complete(tmpfs: MountFn) -> None:
    fs = tmpfs("dumps", size="4m")
    writer = BundleWriter(fs.path, hostname="web-1")
    bundle = writer.open("threshold", 1)
    bundle.write_text("first.txt", "written before the remount")
    fs.remount_read_only()  # possible while the bundle is open: its lock fd is read-only

    with pytest.raises(DumpVolumeError, match=r"cannot write .*/second\.json: read-only file system$"):
        bundle.write_json("second.json", {"x": 1})
    with pytest.raises(DumpVolumeError, match=rf"cannot write .*/{MANIFEST}: read-only file system$"):
        bundle.finish({})

    assert manifests(fs.path) == []
    assert tmp_files(fs.path) == []
    [info] = writer.list()
    assert (info.complete, info.has_manifest, info.in_progress) == (False, False, False)


def test_missing_volume_under_a_read_only_parent_is_refused(tmpfs: MountFn) -> None:
    parent = tmpfs("parent", size="4m", read_only=True).path
    writer = BundleWriter(parent / "dumps" / "app", hostname="web-1")

    with pytest.raises(
        DumpVolumeError, match=f"^dump volume {parent}/dumps/app: cannot create: read-only file system$"
    ):
        writer.check()
    with pytest.raises(DumpVolumeError, match="cannot create: read-only file system"):
        writer.open("manual", 1)

    assert list(parent.iterdir()) == []


def test_full_volume_is_refused_before_anything_is_written(tmpfs: MountFn) -> None:
    volume = tmpfs("dumps", size="256k").path
    fill(volume)
    writer = BundleWriter(volume, hostname="web-1")

    with pytest.raises(DumpVolumeError, match=rf"^dump volume {volume}: no space left \(0 B free"):
        writer.check()
    with pytest.raises(DumpVolumeError, match="no space left"):
        writer.open("threshold", 1)

    assert [p.name for p in volume.iterdir()] == ["ballast"]


def test_file_larger_than_the_volume_is_refused_up_front(tmpfs: MountFn) -> None:
    volume = tmpfs("dumps", size="256k").path
    writer = BundleWriter(volume, hostname="web-1", min_free_bytes=64 * KiB)
    with writer.open("threshold", 1) as bundle:
        with pytest.raises(DumpVolumeError, match=r"cannot write .*/memray\.bin: no space left \(\d+ KiB free"):
            bundle.write_bytes("memray.bin", b"\1" * MiB, "memray")
        assert bundle.files == ()

    assert manifests(volume) == []
    assert tmp_files(volume) == []
    assert sorted(p.name for p in bundle.path.iterdir()) == []
    [info] = writer.list()
    assert (info.complete, info.in_progress) == (False, False)


def test_enospc_in_the_middle_of_a_write_leaves_no_half_file(tmpfs: MountFn) -> None:
    volume = tmpfs("dumps", size="256k").path
    # A free-space reading that is already stale, as when another process fills the
    # volume between the check and the write: only the kernel's ENOSPC stops us.
    writer = BundleWriter(volume, hostname="web-1", min_free_bytes=0, free_space=lambda _: 1 << 40)
    with writer.open("threshold", 1) as bundle:
        with pytest.raises(DumpVolumeError, match=r"cannot write .*/memray\.bin: no space left$"):
            bundle.write_bytes("memray.bin", b"\1" * MiB, "memray")
        assert tmp_files(volume) == []
        bundle.write_text("small.txt", "still fits")  # the half file was removed, its space is back
        fill(volume)
        with pytest.raises(DumpVolumeError, match=rf"cannot write .*/{MANIFEST}: no space left$"):
            bundle.finish({})

    assert manifests(volume) == []
    assert tmp_files(volume) == []
    [info] = writer.list()
    assert (info.complete, info.has_manifest, [f.name for f in info.files]) == (False, False, ["small.txt"])


_CHILD = """
import os, sys, time
from pathlib import Path
from oomguard.bundle import BundleWriter

bundle = BundleWriter(Path(sys.argv[1]), hostname="web-1").open("predicted", os.getpid())
with open(bundle.file_path("memray.bin"), "wb") as capture:
    capture.write(b"MEMRAY" * 1000)
print(bundle.id, flush=True)
time.sleep(120)
"""


def test_sigkilled_writer_leaves_an_incomplete_bundle_post_mortem_can_finish(tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    with subprocess.Popen([sys.executable, "-c", _CHILD, str(dump_dir)], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            bundle_id = child.stdout.readline().strip()
            assert bundle_id, "the child never opened its bundle"
            # While the child lives: in progress, untouchable by another process's retention.
            other = BundleWriter(dump_dir, max_dumps=2, hostname="web-2")
            for _ in range(3):
                other.open("manual", os.getpid()).finish({})
            assert other.enforce_retention() == []
            live = {info.id: info for info in other.list()}[bundle_id]
            assert live.in_progress
            with pytest.raises(DumpInProgress):
                finish_incomplete(live, {})
        finally:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    dead = {info.id: info for info in other.list()}[bundle_id]
    assert (dead.complete, dead.has_manifest, dead.in_progress) == (False, False, False)
    finish_incomplete(dead, {"verdict": {"kind": "unknown"}})
    [after] = [info for info in other.list() if info.id == bundle_id]
    assert (after.complete, after.has_manifest, after.trigger, after.pid) == (False, True, "oom", child.pid)
    assert [(f.name, f.kind, f.bytes) for f in after.files] == [("memray.bin", "memray", 6000)]
