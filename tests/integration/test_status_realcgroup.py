"""``oomguard status --json`` inside a real memory-limited cgroup (SPEC §4)."""

from __future__ import annotations

import io
import json
import sys

import pytest

from oomguard.cli.main import build_parser
from oomguard.cli.status import run
from tests.support.realcgroup import RealCgroup, require

MiB = 1024 * 1024

CHILD = r"""
import json, subprocess, sys

def status():
    out = subprocess.run([sys.executable, "-m", "oomguard", "status", "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["memory"]

before = status()
buf = bytearray(100 * 1024 * 1024)
for i in range(0, len(buf), 4096):   # touch every page: bytearray() alone may be lazily zero-mapped
    buf[i] = 1
after = status()
print(json.dumps({"before": before, "after": after}))
"""


@pytest.mark.realcgroup
def test_status_sees_limit_and_100_mib_of_anon_growth() -> None:
    require()
    with RealCgroup(256 * MiB) as cgroup:
        outcome = cgroup.run([sys.executable, "-c", CHILD], timeout=60)
    assert outcome.returncode == 0, outcome.stderr
    result = json.loads(outcome.stdout)
    before, after = result["before"], result["after"]
    assert before["limit_bytes"] == after["limit_bytes"] == 268435456
    assert before["limit_source"] != "host"
    assert before["cgroup_version"] == cgroup.version
    assert after["anon_bytes"] - before["anon_bytes"] >= 95 * MiB
    assert after["working_set_bytes"] - before["working_set_bytes"] >= 95 * MiB
    assert after["rss_bytes"] is not None


@pytest.mark.realcgroup
def test_status_table_for_another_pid() -> None:
    require()
    with RealCgroup(128 * MiB) as cgroup:
        sleeper = cgroup.popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            out = io.StringIO()
            assert run(build_parser().parse_args(["status", "--json", "--pid", str(sleeper.pid)]), out) == 0
            document = json.loads(out.getvalue())
        finally:
            sleeper.kill()
            cgroup.wait(sleeper, timeout=10)
    assert document["memory"]["limit_bytes"] == 128 * MiB
    assert document["pid"] == sleeper.pid
    assert [p["pid"] for p in document["processes"]] == [sleeper.pid]
