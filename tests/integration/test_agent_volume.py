"""The agent with a bad dump volume: the app keeps running, one log line, nothing half-written looks complete."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.integration.test_guard_oom import LEAK, agent_env
from tests.support.mounts import MountFn
from tests.support.realcgroup import RealCgroup, require

MiB = 1024 * 1024


def run_episode(dump_dir: Path) -> tuple[int | None, str, str]:
    """A leak to 93% of the limit (arm + dump due), then free and exit 0."""
    with RealCgroup(256 * MiB) as cgroup:
        outcome = cgroup.run(
            [sys.executable, str(LEAK), "30", "--blob", str(MiB), "--stop-at", "0.93", "--hold", "1.5", "--then-free"],
            timeout=120,
            env=agent_env(dump_dir),
        )
    return outcome.returncode, outcome.stdout, outcome.stderr


def volume_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "dump volume" in line]


def assert_nothing_complete(root: Path) -> None:
    assert not list(root.rglob("manifest.json"))
    assert not list(root.rglob("*.tmp"))


@pytest.mark.realcgroup
def test_read_only_volume(tmpfs: MountFn) -> None:
    require()
    volume = tmpfs("ro", size="4m", read_only=True).path
    code, stdout, stderr = run_episode(volume)
    assert code == 0, stderr
    assert "freed" in stdout  # the app ran to its end
    errors = volume_errors(stderr)
    assert len(errors) == 1, stderr
    assert "read-only file system" in errors[0]
    assert_nothing_complete(volume)


@pytest.mark.realcgroup
def test_missing_volume_under_a_read_only_parent(tmpfs: MountFn) -> None:
    require()
    parent = tmpfs("parent", size="4m", read_only=True).path
    code, stdout, stderr = run_episode(parent / "dumps")
    assert code == 0, stderr
    assert "freed" in stdout
    errors = volume_errors(stderr)
    assert len(errors) == 1, stderr
    assert "cannot create" in errors[0]
    assert not (parent / "dumps").exists()


@pytest.mark.realcgroup
def test_full_volume(tmpfs: MountFn) -> None:
    require()
    volume = tmpfs("full", size="256k").path
    fd = os.open(volume / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError:
                break
    finally:
        os.close(fd)
    code, stdout, stderr = run_episode(volume)
    assert code == 0, stderr
    assert "freed" in stdout
    errors = volume_errors(stderr)
    assert len(errors) == 1, stderr
    assert "no space left" in errors[0]
    assert_nothing_complete(volume)
