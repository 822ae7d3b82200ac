"""Bundle writer, listing and retention on a plain temp directory (SPEC §6)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import oomguard
from oomguard.bundle import MANIFEST, BundleFile, BundleWriter, finish_incomplete, read_manifest
from oomguard.errors import DumpInProgress, DumpVolumeError
from oomguard.retention import parse_name

T0 = 1_704_164_645.25  # 2024-01-02T03:04:05.250Z


class StepClock:
    """Wall clock that moves on by ``step`` seconds each time it is read."""

    def __init__(self, start: float = T0, step: float = 0.0) -> None:
        self.now = start - step
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def make_writer(dump_dir: Path, **kwargs: object) -> BundleWriter:
    kwargs.setdefault("hostname", "web-1")
    kwargs.setdefault("clock", StepClock(step=1.0))
    return BundleWriter(dump_dir, **kwargs)  # type: ignore[arg-type]


def finished(writer: BundleWriter, size: int = 0, trigger: str = "manual") -> Path:
    bundle = writer.open(trigger, 42)
    if size:
        bundle.write_bytes("data.bin", b"x" * size, "binary")
    bundle.finish({})
    return bundle.path


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # Modes must come from the writer, not from whatever umask the host app runs with.
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_folder_name_is_utc_stamp_host_pid_trigger(tmp_path: Path) -> None:
    bundle = make_writer(tmp_path, clock=lambda: T0).open("threshold", 42)
    with bundle:
        assert bundle.id == "20240102T030405Z-web-1-42-threshold"
        assert bundle.path == tmp_path / bundle.id
        name = parse_name(bundle.id)
        assert name is not None
        assert (name.hostname, name.pid, name.trigger, name.created_at) == (
            "web-1",
            42,
            "threshold",
            "2024-01-02T03:04:05Z",
        )


def test_same_second_gets_numbered_suffixes(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, clock=lambda: T0)
    (tmp_path / "20240102T030405Z-web-1-42-manual").write_text("a stray file already has the name")
    ids = []
    for _ in range(3):
        bundle = writer.open("manual", 42)
        ids.append(bundle.id)
        bundle.close()
    base = "20240102T030405Z-web-1-42-manual"
    assert ids == [f"{base}-2", f"{base}-3", f"{base}-4"]
    assert all(parse_name(i) is not None for i in ids)


def test_hostname_is_made_safe_for_a_folder_name(tmp_path: Path) -> None:
    with make_writer(tmp_path, hostname="a/b c", clock=lambda: T0).open("manual", 7) as bundle:
        assert bundle.id == "20240102T030405Z-a_b_c-7-manual"
        assert bundle.hostname == "a/b c"


@pytest.mark.parametrize("trigger", ["", "Manual", "oom-kill", "a/b", "x1"])
def test_bad_trigger_is_rejected(tmp_path: Path, trigger: str) -> None:
    with pytest.raises(ValueError, match="invalid trigger"):
        make_writer(tmp_path).open(trigger, 1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("permissive_umask")
def test_folder_is_0700_and_every_file_0600(tmp_path: Path) -> None:
    bundle = make_writer(tmp_path / "dumps").open("manual", 42)
    bundle.write_bytes("a.bin", b"\0" * 10, "binary")
    bundle.write_text("b.txt", "hello")
    bundle.write_json("c.json", {"k": 1})
    external = bundle.file_path("memray.bin")
    external.write_bytes(b"MEMRAY")
    os.chmod(external, 0o644)
    bundle.add_file("memray.bin", "memray")
    manifest = bundle.finish({})
    assert mode(bundle.path) == 0o700
    assert mode(tmp_path / "dumps") == 0o700
    names = sorted(p.name for p in bundle.path.iterdir())
    assert names == ["a.bin", "b.txt", "c.json", MANIFEST, "memray.bin"]
    assert {p.name: mode(p) for p in bundle.path.iterdir()} == dict.fromkeys(names, 0o600)
    assert manifest == bundle.path / MANIFEST


def test_manifest_is_written_last_with_every_field(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, clock=lambda: T0)
    bundle = writer.open("threshold", 42)
    bundle.write_json("report.json", {"x": 1})
    bundle.write_bytes("memray.bin", b"\1" * 100, "memray")
    assert not (bundle.path / MANIFEST).exists()
    [info] = writer.list()
    assert (info.complete, info.has_manifest, info.in_progress) == (False, False, True)

    memory = {"cgroup_version": 2, "limit_bytes": 100, "usage_bytes": 90}
    verdict = {"kind": "python_heap_leak", "confidence": 0.9, "summary": "s", "evidence": ["e"]}
    bundle.finish({"memory": memory, "verdict": verdict, "suspects": []})

    doc = json.loads((bundle.path / MANIFEST).read_text())
    assert doc == {
        "schema": 1,
        "id": "20240102T030405Z-web-1-42-threshold",
        "created_at": "2024-01-02T03:04:05.250Z",
        "trigger": "threshold",
        "complete": True,
        "pid": 42,
        "hostname": "web-1",
        "agent_version": oomguard.__version__,
        "memory": memory,
        "verdict": verdict,
        "suspects": [],
        "files": [
            {"name": "report.json", "kind": "json", "bytes": len(b'{\n  "x": 1\n}\n')},
            {"name": "memray.bin", "kind": "memray", "bytes": 100},
        ],
    }
    assert read_manifest(bundle.path) == doc
    [info] = writer.list()
    assert (info.complete, info.has_manifest, info.in_progress) == (True, True, False)
    assert info.files == (BundleFile("report.json", "json", 13), BundleFile("memray.bin", "memray", 100))
    # Nothing follows the manifest: the bundle is closed for writing.
    with pytest.raises(ValueError, match="already finished"):
        bundle.write_text("late.txt", "too late")
    assert not (bundle.path / "late.txt").exists()


def test_caller_cannot_override_schema_id_files_or_complete(tmp_path: Path) -> None:
    bundle = make_writer(tmp_path).open("manual", 42)
    bundle.write_text("a.txt", "a")
    bundle.finish({"schema": 9, "id": "evil", "files": [], "complete": True, "hostname": "override-ok"}, complete=False)
    doc = read_manifest(bundle.path)
    assert doc is not None
    assert (doc["schema"], doc["id"], doc["complete"], doc["hostname"]) == (1, bundle.id, False, "override-ok")
    assert doc["files"] == [{"name": "a.txt", "kind": "text", "bytes": 1}]


def test_rewriting_a_file_records_it_once_and_leaves_no_tmp(tmp_path: Path) -> None:
    with make_writer(tmp_path).open("manual", 42) as bundle:
        bundle.write_text("a.txt", "first version")
        bundle.write_text("a.txt", "second")
        assert bundle.files == (BundleFile("a.txt", "text", 6),)
        assert (bundle.path / "a.txt").read_text() == "second"
        assert sorted(p.name for p in bundle.path.iterdir()) == [".lock", "a.txt"]


@pytest.mark.parametrize("name", ["", "../x", "a/b", "..", "x..y", ".lock", ".hidden", "a.tmp", MANIFEST])
def test_unsafe_file_names_are_rejected(tmp_path: Path, name: str) -> None:
    with make_writer(tmp_path).open("manual", 42) as bundle:
        with pytest.raises(ValueError, match=r"invalid bundle file name|written by finish"):
            bundle.file_path(name)
        with pytest.raises(ValueError, match=r"invalid bundle file name|written by finish"):
            bundle.write_text(name, "x")
        assert bundle.files == ()


def test_closed_bundle_is_listed_incomplete(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, clock=lambda: T0)
    with writer.open("predicted", 42) as bundle:
        bundle.file_path("memray.bin").write_bytes(b"12345")
    [info] = writer.list()
    assert info.id == bundle.id
    assert (info.complete, info.has_manifest, info.in_progress) == (False, False, False)
    assert (info.trigger, info.pid, info.created_at) == ("predicted", 42, "2024-01-02T03:04:05Z")
    assert info.files == (BundleFile("memray.bin", "memray", 5),)
    assert info.bytes == 5


def test_listing_is_newest_first_and_ignores_other_entries(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    paths = [finished(writer) for _ in range(3)]
    (tmp_path / "notes.txt").write_text("not a dump")
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "20241399T000000Z-web-1-1-manual").mkdir()  # the shape, but no date
    (tmp_path / "20240101T000000Z-web-1-1-manual.txt").write_text("a file, not a folder")
    os.symlink(paths[0], tmp_path / "20200101T000000Z-web-1-1-manual")
    assert [info.path for info in writer.list()] == paths[::-1]


def test_corrupt_manifest_reads_as_none_and_lists_incomplete(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    path = finished(writer)
    (path / MANIFEST).write_text("{not json")
    assert read_manifest(path) is None
    [info] = writer.list()
    assert (info.complete, info.has_manifest) == (False, False)


def test_retention_keeps_the_newest_by_count(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, max_dumps=10)
    paths = [finished(writer) for _ in range(5)]
    removed = make_writer(tmp_path, max_dumps=2).enforce_retention()
    assert removed == paths[:3]
    assert [info.path for info in writer.list()] == paths[:2:-1]


def test_retention_keeps_the_newest_by_bytes(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, max_dumps=10)
    paths = [finished(writer, size=1000) for _ in range(4)]
    sizes = [info.bytes for info in writer.list()]  # newest first
    assert all(size > 1000 for size in sizes)  # data plus manifest
    removed = make_writer(tmp_path, max_bytes=sizes[0] + sizes[1]).enforce_retention()
    assert removed == paths[:2]
    assert [info.path for info in writer.list()] == paths[:1:-1]


def test_retention_never_deletes_keep_or_unrelated_folders(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, max_dumps=10)
    paths = [finished(writer) for _ in range(3)]
    stray = tmp_path / "my-own-folder"
    stray.mkdir()
    removed = make_writer(tmp_path, max_dumps=2).enforce_retention(keep=paths[0])
    assert removed == paths[1:2]  # the oldest is kept, so the next oldest goes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([paths[0].name, paths[2].name, stray.name])


def test_live_writer_folder_is_in_progress_and_survives_retention(tmp_path: Path) -> None:
    first = make_writer(tmp_path, max_dumps=2)
    live = first.open("threshold", 1)
    live.write_text("partial.txt", "still writing")
    second = make_writer(tmp_path, max_dumps=2, clock=StepClock(T0 + 100, 1.0))
    later = [finished(second) for _ in range(4)]
    assert live.path.is_dir()
    assert second.enforce_retention() == []
    listed = {info.path: info for info in second.list()}
    assert listed[live.path].in_progress
    assert set(listed) == {live.path, later[-1]}
    live.finish({})
    assert make_writer(tmp_path, max_dumps=1).enforce_retention() == [live.path]


def test_open_makes_room_but_never_removes_the_new_bundle(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, max_dumps=1)
    finished(writer)
    newest = finished(writer)
    assert [info.path for info in writer.list()] == [newest]


def test_finish_applies_byte_retention_to_the_others(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, max_bytes=1500)
    old = finished(writer, size=1000)
    new = finished(writer, size=1000)
    assert [info.path for info in writer.list()] == [new]
    assert not old.exists()


def test_abandon_removes_the_folder(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    bundle = writer.open("predicted", 42)
    bundle.file_path("memray.bin").write_bytes(b"capture")
    bundle.abandon()
    assert not bundle.path.exists()
    assert writer.list() == []
    with pytest.raises(ValueError, match="abandoned"):
        bundle.write_text("x.txt", "x")


def test_finish_incomplete_writes_an_oom_manifest(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, clock=lambda: T0)
    bundle = writer.open("predicted", 42)
    bundle.file_path("memray.bin").write_bytes(b"\2" * 64)
    (bundle.path / "report.json.tmp").write_text('{"half')  # a write cut short by the kill
    bundle.close()  # what a SIGKILL leaves: no manifest, lock released
    [info] = writer.list()

    path = finish_incomplete(info, {"verdict": {"kind": "oom"}, "trigger": "manual", "complete": True})

    doc = read_manifest(info.path)
    assert path == info.path / MANIFEST
    assert doc is not None
    assert (doc["complete"], doc["trigger"], doc["pid"], doc["hostname"]) == (False, "oom", 42, "web-1")
    assert doc["created_at"] == "2024-01-02T03:04:05Z"
    assert doc["files"] == [{"name": "memray.bin", "kind": "memray", "bytes": 64}]
    assert doc["verdict"] == {"kind": "oom"}
    assert sorted(p.name for p in info.path.iterdir()) == [MANIFEST, "memray.bin"]
    [after] = writer.list()
    assert (after.complete, after.has_manifest, after.trigger) == (False, True, "oom")
    assert finish_incomplete(after, {"verdict": "ignored"}) == path  # already finished: left alone
    assert read_manifest(info.path) == doc


def test_finish_incomplete_refuses_a_live_bundle(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)
    with writer.open("threshold", 42) as bundle:
        [info] = writer.list()
        with pytest.raises(DumpInProgress, match=bundle.id):
            finish_incomplete(info, {})
        assert not (bundle.path / MANIFEST).exists()
        assert writer.list()[0].in_progress  # our lock file survived the attempt


def test_check_creates_a_missing_directory(tmp_path: Path) -> None:
    dump_dir = tmp_path / "a" / "b" / "dumps"
    make_writer(dump_dir).check()
    assert dump_dir.is_dir()
    assert mode(dump_dir) == 0o700
    assert list(dump_dir.iterdir()) == []  # the write probe cleaned up after itself


def test_check_rejects_a_file(tmp_path: Path) -> None:
    (tmp_path / "dumps").write_text("")
    with pytest.raises(DumpVolumeError, match=r"dumps: not a directory$"):
        make_writer(tmp_path / "dumps").check()
    with pytest.raises(DumpVolumeError, match=r"cannot create: not a directory$"):
        make_writer(tmp_path / "dumps" / "sub").check()


def test_check_and_open_refuse_a_nearly_full_volume(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, free_space=lambda _: 12 * 1024)
    with pytest.raises(DumpVolumeError, match=r"no space left \(12 KiB free, at least 1\.0 MiB needed\)") as err:
        writer.open("manual", 42)
    assert str(tmp_path) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_a_file_larger_than_the_free_space(tmp_path: Path) -> None:
    free = [10 << 20]
    writer = make_writer(tmp_path, free_space=lambda _: free[0])
    with writer.open("manual", 42) as bundle:
        free[0] = 100 * 1024
        with pytest.raises(DumpVolumeError, match=r"cannot write .*/big\.bin: no space left \(100 KiB free"):
            bundle.write_bytes("big.bin", b"\0" * 200_000, "binary")
        assert bundle.files == ()
        assert sorted(p.name for p in bundle.path.iterdir()) == [".lock"]


def test_add_file_of_a_missing_file_is_a_volume_error(tmp_path: Path) -> None:
    with (
        make_writer(tmp_path).open("manual", 42) as bundle,
        pytest.raises(DumpVolumeError, match=r"memray\.bin: no such file"),
    ):
        bundle.add_file("memray.bin", "memray")


def test_close_after_finish_is_a_no_op(tmp_path: Path) -> None:
    with make_writer(tmp_path).open("manual", 42) as bundle:
        bundle.finish({})
    bundle.close()
    assert read_manifest(bundle.path) is not None
    assert sorted(p.name for p in bundle.path.iterdir()) == [MANIFEST]  # the lock file went with the lock


def test_retention_sweeps_stale_staging_folders_only(tmp_path: Path) -> None:
    stale, fresh = tmp_path / ".oomguard-new-1-0123456789ab", tmp_path / ".oomguard-new-1-ba9876543210"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (T0, T0))  # left by a writer killed between mkdir and rename
    make_writer(tmp_path).enforce_retention()
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name]
