"""The diagnosis acceptance (SPEC §7): every scenario in a real memory cgroup gets the right verdict.

Each scenario in ``examples/scenarios/`` starts the agent with ``import
oomguard.auto`` and prints every verdict change as ``verdict {json}``. A run
stops as soon as the expected kind shows up (90 s at most); healthy and
page_cache_growth run three times each, concurrently, for a fixed minute and
must never be called a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.realcgroup import RealCgroup, require
from tests.support.scenarios import DEADLINE_S, SCENARIOS, Run, agent_env, run_scenario

MiB = 1024 * 1024
PYTHON_LEAK = SCENARIOS / "python_heap_leak.py"
CACHE_LINE = next(n for n, line in enumerate(PYTHON_LEAK.read_text().splitlines(), 1) if line.endswith("# CACHE-LINE"))
LEAK_KINDS = {"python_heap_leak", "native_leak", "thread_leak"}


def kind_is(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda verdict: verdict["kind"] == kind


@pytest.mark.realcgroup
@pytest.mark.parametrize(
    ("name", "limit", "kind"),
    [
        ("python_heap_leak", 512 * MiB, "python_heap_leak"),
        ("native_leak", 512 * MiB, "native_leak"),
        ("thread_leak", 512 * MiB, "thread_leak"),
        ("limit_too_low", 256 * MiB, "limit_too_low"),
    ],
)
def test_scenario_gets_its_verdict(tmp_path: Path, name: str, limit: int, kind: str) -> None:
    require()
    run = run_scenario(name, limit, tmp_path, until=kind_is(kind))
    found = run.first(kind)
    assert found is not None, (run.kinds(), run.stderr[-2000:])
    seconds, verdict = found
    assert seconds <= DEADLINE_S
    assert 0.5 <= verdict["confidence"] <= 1.0
    assert verdict["evidence"], verdict
    wrong = [k for k in run.kinds() if k in LEAK_KINDS and k != kind]
    assert not wrong, f"{name} was first called {wrong}"
    if kind == "python_heap_leak":
        assert verdict["suspects"][0]["where"] == f"{PYTHON_LEAK}:{CACHE_LINE}", verdict["suspects"]


def _disk_backed(path: Path) -> bool:
    best, fstype = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        point = fields[1]
        if str(path).startswith(point.rstrip("/") + "/") and len(point) > len(best):
            best, fstype = point, fields[2]
    return fstype not in ("tmpfs", "ramfs")


@pytest.mark.realcgroup
@pytest.mark.parametrize(
    ("name", "limit", "kind"),
    [("healthy", 256 * MiB, "healthy"), ("page_cache_growth", 512 * MiB, "page_cache_growth")],
)
def test_never_a_leak_over_three_runs(tmp_path: Path, name: str, limit: int, kind: str) -> None:
    require()
    if name == "page_cache_growth" and not _disk_backed(tmp_path):
        pytest.skip(f"{tmp_path} is on tmpfs: written files would be shmem, not page cache")
    folders = [tmp_path / f"run{i}" for i in range(3)]
    for folder in folders:
        folder.mkdir()
    seconds = 60.0

    def one(folder: Path) -> Run:
        extra = [str(folder)] if name == "page_cache_growth" else []
        return run_scenario(name, limit, folder, *extra, "--seconds", str(seconds), deadline=seconds + 20)

    with ThreadPoolExecutor(3) as pool:  # they mostly wait: run them side by side
        runs = list(pool.map(one, folders))
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
        assert not LEAK_KINDS & set(run.kinds()), (run.kinds(), run.verdicts)
        found = run.first(kind)
        assert found is not None, run.kinds()
        assert found[0] <= DEADLINE_S


def test_status_prints_an_honest_verdict_from_one_sample() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oomguard", "status", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)["verdict"]
    assert verdict["kind"] == "insufficient_data"
    assert verdict["samples"] == 1
    table = subprocess.run(
        [sys.executable, "-m", "oomguard", "status"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "verdict" in table.stdout
    assert "insufficient_data (0.00): not enough data: one sample" in table.stdout


@pytest.mark.realcgroup
def test_bundles_and_the_post_mortem_carry_the_verdict(tmp_path: Path) -> None:
    require()
    dump_dir = tmp_path / "dumps"
    argv = [sys.executable, str(PYTHON_LEAK), "--mb-per-s", "4", "--seconds", "300"]
    with RealCgroup(256 * MiB) as cgroup:
        outcome = cgroup.run(argv, timeout=150, env=agent_env(dump_dir))
        assert outcome.oom_killed, (outcome.returncode, outcome.stderr[-2000:])
        # The restarted service (same cgroup, same volume) finishes the killed capture.
        restart = cgroup.run(
            [sys.executable, "-c", "import oomguard.auto, time; time.sleep(1.5)"], timeout=60, env=agent_env(dump_dir)
        )
    assert restart.returncode == 0, restart.stderr
    manifests = [json.loads(p.read_text()) for p in sorted(dump_dir.glob("*/manifest.json"))]
    complete = [m for m in manifests if m["complete"]]
    killed = [m for m in manifests if m["trigger"] == "oom"]
    assert complete, outcome.stderr[-2000:]
    assert killed, [m["trigger"] for m in manifests]
    for manifest in complete:
        assert manifest["verdict"]["kind"] == "python_heap_leak", manifest["verdict"]
    for manifest in killed:
        verdict = manifest["verdict"]
        assert verdict["kind"] == "python_heap_leak", verdict
        assert verdict["summary"].startswith("the last process was OOM-killed")
        assert any(e.startswith("before the kill: anon +") for e in verdict["evidence"])
