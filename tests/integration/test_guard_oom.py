"""The core promise (SPEC §5-§6): evidence on the volume before the kernel's OOM kill.

Every test runs a real program in a real memory cgroup; the kernel really kills it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from oomguard.bundle import BundleWriter
from oomguard.heap.suspects import read_capture_suspects
from tests.support.realcgroup import Outcome, RealCgroup, require

MiB = 1024 * 1024
PROGRAMS = Path(__file__).parent / "programs"
LEAK = PROGRAMS / "leak.py"
LEAK_LINE = next(n for n, line in enumerate(LEAK.read_text().splitlines(), 1) if "LEAK-LINE" in line)
LEAK_WHERE = f"{LEAK}:{LEAK_LINE}"


def agent_env(dump_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OOMGUARD_")}
    env.update({"OOMGUARD_DUMP_DIR": str(dump_dir), "OOMGUARD_LOG_LEVEL": "INFO"}, **extra)
    return env


def run_leak(tmp_path: Path, limit: int, *args: str, timeout: float = 120, **env: str) -> Outcome:
    with RealCgroup(limit) as cgroup:
        return cgroup.run([sys.executable, str(LEAK), *args], timeout=timeout, env=agent_env(tmp_path / "dumps", **env))


def manifests(dump_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(dump_dir.glob("*/manifest.json")):
        document: dict[str, Any] = json.loads(path.read_text())
        found.append(document)
    return found


@pytest.mark.realcgroup
@pytest.mark.parametrize("rate", [20, 100, 400])
def test_python_heap_leak_leaves_evidence_before_the_kill(tmp_path: Path, rate: int) -> None:
    require()
    outcome = run_leak(tmp_path, 256 * MiB, str(rate))
    assert outcome.oom_killed, (outcome.returncode, outcome.stderr[-2000:])
    dump_dir = tmp_path / "dumps"
    captures = sorted(dump_dir.glob("*/memray.bin"))
    assert captures, f"no capture on the volume; agent said: {outcome.stderr[-2000:]}"
    # memray's own reader opens every capture, finished or cut short by the kill,
    # and the leaking line is among the top allocation sites of at least one.
    tops = [[s.where for s in read_capture_suspects(path)[:3]] for path in captures]
    assert any(LEAK_WHERE in top for top in tops), tops
    complete = [m for m in manifests(dump_dir) if m["complete"]]
    if rate == 20:
        assert complete, outcome.stderr[-2000:]
    for manifest in complete:
        assert manifest["trigger"] in ("threshold", "predicted")
        if rate == 20 or manifest["suspects"]:
            assert manifest["suspects"][0]["where"] == LEAK_WHERE
        else:  # a fast leak can leave too little headroom to read the capture: the budget says so
            collectors = {c["name"]: c for c in manifest["collectors"]}
            assert collectors["memray_suspects"]["reason"].startswith("skipped: needs"), collectors
        assert {f["name"] for f in manifest["files"]} >= {"memray.bin", "memory.json", "timeline.json"}
        assert manifest["memory"]["limit_bytes"] == 256 * MiB


@pytest.mark.realcgroup
def test_post_mortem_finishes_what_the_kill_cut_short(tmp_path: Path) -> None:
    require()
    dump_dir = tmp_path / "dumps"
    with RealCgroup(256 * MiB) as cgroup:
        outcome = cgroup.run([sys.executable, str(LEAK), "100"], timeout=120, env=agent_env(dump_dir))
        assert outcome.oom_killed
        incomplete = [d for d in BundleWriter(dump_dir).list() if not d.has_manifest]
        assert incomplete, "the tail capture should be left without a manifest by the kill"
        assert all(not d.in_progress for d in incomplete)
        # The restarted service (same cgroup, same volume) finishes them on start.
        restart = cgroup.run(
            [sys.executable, "-c", "import oomguard.auto, time; time.sleep(1.5)"], timeout=60, env=agent_env(dump_dir)
        )
    assert restart.returncode == 0, restart.stderr
    assert "post-mortem" in restart.stderr
    finished = {m["id"]: m for m in manifests(dump_dir)}
    for info in incomplete:
        manifest = finished[info.id]
        assert manifest["trigger"] == "oom"
        assert manifest["complete"] is False
        assert manifest["oom_kill_confirmed"] is True
        assert manifest["suspects"][0]["where"] == LEAK_WHERE
        assert "memray" in {f["kind"] for f in manifest["files"]}


PLATEAU = r"""
import sys, time
base = [bytearray(b"x" * (1024 * 1024)) for _ in range(int(sys.argv[1]))]   # the service's steady working set
import oomguard.auto                                     # the agent starts on a warm service
from oomguard.cgroup import CgroupReader
reader = CgroupReader()
extra = []
while reader.read().working_set_bytes < 0.70 * reader.read().limit_bytes:  # the last few % warm slowly
    extra.append(bytearray(b"x" * (256 * 1024)))
    time.sleep(0.1)                                      # ~2.5 MB/s: DUMP_AT stays >10 s away
time.sleep(8)                                            # then it plateaus
"""


@pytest.mark.realcgroup
def test_plateau_at_70_percent_never_arms(tmp_path: Path) -> None:
    require()
    with RealCgroup(256 * MiB) as cgroup:
        outcome = cgroup.run([sys.executable, "-c", PLATEAU, "150"], timeout=120, env=agent_env(tmp_path / "dumps"))
    assert outcome.returncode == 0, outcome.stderr
    assert "armed" not in outcome.stderr
    assert not list((tmp_path / "dumps").glob("*/"))


@pytest.mark.realcgroup
def test_rise_to_85_percent_and_back_arms_then_disarms_without_a_bundle(tmp_path: Path) -> None:
    require()
    # 20 MB/s: at 85 % the limit is 2 s away, far more than a bundle needs, so no
    # predicted dump. A fixed malloc mmap threshold keeps the 1 MiB blobs mmap'ed:
    # freeing them really returns the memory (glibc's dynamic threshold would not).
    outcome = run_leak(
        tmp_path,
        256 * MiB,
        "20",
        "--blob",
        str(1024 * 1024),
        "--stop-at",
        "0.85",
        "--hold",
        "20",
        "--then-free",
        MALLOC_MMAP_THRESHOLD_="131072",
    )
    assert outcome.returncode == 0, outcome.stderr
    assert "oomguard: armed" in outcome.stderr
    assert "oomguard: disarmed" in outcome.stderr
    assert "bundle written" not in outcome.stderr
    assert not list((tmp_path / "dumps").glob("*/")), "an armed capture that never led to a dump is removed"


BIG_HEAP = r"""
import json, sys, tracemalloc
import oomguard
from oomguard.cgroup import CgroupReader

heap = [str(i) * 2 for i in range(1_200_000)]        # >= 1 M traced blocks (PYTHONTRACEMALLOC=1)
reader = CgroupReader()
pad = []
while True:                                            # shrink the headroom to ~6% of the limit
    memory = reader.read()
    if memory.working_set_bytes >= 0.94 * memory.limit_bytes:
        break
    pad.append(bytearray(b"x" * (2 * 1024 * 1024)))
oomguard.start()
path = oomguard.dump(kind="heap")
blocks = tracemalloc.get_tracemalloc_memory() // 47   # tracemalloc's ~47 bytes per traced block
print(json.dumps({"path": str(path), "traced": tracemalloc.get_traced_memory()[0], "blocks": blocks}))
"""


@pytest.mark.realcgroup
def test_budget_skips_expensive_collectors_when_headroom_is_small(tmp_path: Path) -> None:
    require()
    dump_dir = tmp_path / "dumps"
    env = agent_env(dump_dir, PYTHONTRACEMALLOC="1", OOMGUARD_ARM_AT="0.97", OOMGUARD_DUMP_AT="0.99")
    with RealCgroup(384 * MiB) as cgroup:
        outcome = cgroup.run([sys.executable, "-c", BIG_HEAP], timeout=180, env=env)
    assert outcome.returncode == 0, (outcome.returncode, outcome.stderr[-2000:])
    assert not outcome.oom_killed
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert result["blocks"] >= 1_000_000
    manifest = json.loads((Path(result["path"]) / "manifest.json").read_text())
    assert manifest["complete"] is True
    collectors = {c["name"]: c for c in manifest["collectors"]}
    assert collectors["tracemalloc"]["ran"] is False
    assert collectors["tracemalloc"]["reason"].startswith("skipped: needs")
    assert collectors["tracemalloc"]["estimate_bytes"] > 100 * MiB


SIGNAL = r"""
import os, signal, sys, time, oomguard
oomguard.start(interval=0.05)
print("manual", oomguard.dump(kind="heap"), flush=True)
os.kill(os.getpid(), signal.SIGUSR2)
deadline = time.time() + 20
while time.time() < deadline and not any(p.name.endswith("-signal") and (p / "manifest.json").exists()
                                         for p in oomguard.get_agent().config.dump_dir.iterdir()):
    time.sleep(0.05)
print("served", flush=True)
"""


def test_manual_and_signal_dumps(tmp_path: Path) -> None:
    import subprocess

    dump_dir = tmp_path / "dumps"
    result = subprocess.run(
        [sys.executable, "-c", SIGNAL], env=agent_env(dump_dir), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "served" in result.stdout
    triggers = sorted(m["trigger"] for m in manifests(dump_dir))
    assert triggers == ["manual", "signal"]
    for manifest in manifests(dump_dir):
        assert manifest["complete"] is True
        assert all(f["bytes"] > 0 for f in manifest["files"])
        folder = dump_dir / manifest["id"]
        assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}
