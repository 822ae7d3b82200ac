"""Exercises the real-cgroup harness itself (needs root and a writable memory controller)."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from tests.support.realcgroup import RealCgroup, require

MiB = 1024 * 1024

# Allocates argv[1] bytes in 16 MiB bytearrays, writing one byte per 4 KiB page so every
# page is really faulted in (a large bytearray is calloc'ed from untouched zero pages).
_ALLOCATE = """
import sys
total = int(sys.argv[1])
step = 16 << 20
chunks = []
done = 0
while done < total:
    n = min(step, total - done)
    chunk = bytearray(n)
    chunk[::4096] = b"\\x01" * len(range(0, n, 4096))
    chunks.append(chunk)
    done += n
print("allocated", done, flush=True)
"""


def _wait_for_member(cg: RealCgroup, pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while pid not in cg.pids():
        assert time.monotonic() < deadline, f"pid {pid} never showed up in {cg.path}"
        time.sleep(0.01)


@pytest.mark.realcgroup
def test_child_exceeding_limit_is_oom_killed() -> None:
    require()
    with RealCgroup(128 * MiB) as cg:
        outcome = cg.run([sys.executable, "-c", _ALLOCATE, str(400 * MiB)], timeout=120)
    assert not outcome.timed_out
    assert outcome.returncode == -signal.SIGKILL, outcome
    assert outcome.oom_killed, outcome
    assert outcome.oom_kills >= 1
    assert "allocated" not in outcome.stdout


@pytest.mark.realcgroup
def test_child_within_limit_exits_cleanly() -> None:
    require()
    with RealCgroup(128 * MiB) as cg:
        outcome = cg.run([sys.executable, "-c", _ALLOCATE, str(20 * MiB)], timeout=60)
    assert outcome.returncode == 0, outcome
    assert not outcome.oom_killed
    assert outcome.oom_kills == 0
    assert not outcome.timed_out
    assert outcome.stdout.strip() == f"allocated {20 * MiB}"


@pytest.mark.realcgroup
def test_cgroup_removed_on_exit_even_with_running_child() -> None:
    require()
    with RealCgroup(128 * MiB) as cg:
        path = cg.path
        proc = cg.popen(["sleep", "60"])
        _wait_for_member(cg, proc.pid)
        assert cg.pids() == [proc.pid]
        assert cg.usage_bytes() > 0
        assert path.is_dir()
    assert not path.exists()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.realcgroup
def test_child_sees_itself_inside_the_cgroup() -> None:
    require()
    with RealCgroup(128 * MiB) as cg:
        outcome = cg.run(
            [sys.executable, "-c", "print(open('/proc/self/cgroup').read(), end='')"],
            timeout=60,
        )
        version, name = cg.version, cg.path.name
    assert outcome.returncode == 0, outcome
    lines = [line.split(":", 2) for line in outcome.stdout.splitlines()]
    if version == 1:
        memory = [path for _, controllers, path in lines if "memory" in controllers.split(",")]
    else:
        memory = [path for hid, controllers, path in lines if hid == "0" and not controllers]
    assert len(memory) == 1, outcome.stdout
    assert memory[0].rsplit("/", 1)[-1] == name


@pytest.mark.realcgroup
def test_timeout_kills_the_child() -> None:
    require()
    with RealCgroup(128 * MiB) as cg:
        outcome = cg.run(["sleep", "60"], timeout=0.5)
        assert cg.pids() == []
    assert outcome.timed_out
    assert outcome.returncode == -signal.SIGKILL
    assert not outcome.oom_killed
    assert outcome.oom_kills == 0
