"""Kernel memory notifications on a real cgroup wake the sampler (SPEC §5.5)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from oomguard.events import KernelEvents, Waiter
from tests.support.realcgroup import RealCgroup, require

MiB = 1024 * 1024

GROW = r"""
import sys, time
sys.stdin.readline()                      # wait for the go
chunks = []
for _ in range(100):
    chunks.append(bytearray(b"x" * MiB))
    time.sleep(0.005)
print("done", flush=True)
time.sleep(30)
""".replace("MiB", str(MiB))


@pytest.mark.realcgroup
def test_v1_usage_threshold_wakes_the_waiter() -> None:
    require()
    with RealCgroup(256 * MiB) as cgroup:
        if cgroup.version != 1:
            pytest.skip("cgroup.event_control thresholds exist only on cgroup v1; this host runs v2")
        events = KernelEvents(1, cgroup.path, [64 * MiB])
        assert events.kinds == ["v1-threshold"]
        waiter = Waiter()
        waiter.events = events
        child = cgroup.popen([sys.executable, "-c", GROW], stdin=subprocess.PIPE)
        try:
            assert waiter.wait(0.2) == "timeout"  # nothing crossed yet
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
            started = time.monotonic()
            woke = waiter.wait(30)
            assert woke == "kernel"
            assert cgroup.usage_bytes() >= 64 * MiB
            # The child is still growing: the notification came before it finished.
            assert time.monotonic() - started < 30
        finally:
            child.kill()
            cgroup.wait(child, timeout=10)
            waiter.close()


def test_wake_from_another_thread_and_close_twice() -> None:
    waiter = Waiter()
    threading.Timer(0.05, waiter.wake).start()
    assert waiter.wait(10) == "wake"
    assert waiter.wait(0.01) == "timeout"
    waiter.close()
    waiter.close()


def test_no_registrations_without_a_writable_cgroup(tmp_path: Path) -> None:
    v1 = KernelEvents(1, tmp_path, [1024])
    v2 = KernelEvents(2, tmp_path)
    assert v1.fds == []
    assert v2.fds == []
    v1.close()
    v2.close()
