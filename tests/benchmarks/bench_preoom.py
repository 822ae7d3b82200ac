"""Evidence before the OOM kill, measured: capture rate, headroom, durations, own memory, latency.

Run as root: ``.venv/bin/python tests/benchmarks/bench_preoom.py [--runs 5]``.

For each growth rate (20/100/400 MB/s) the leaking service of the integration
tests runs ``--runs`` times in a fresh 256 MiB memory cgroup until the kernel
OOM-kills it. Printed per rate:

* capture: runs whose volume holds a memray capture that memray's reader opens
  with the leaking line among its top 3 sites;
* bundle: runs with a complete bundle (manifest, ``complete: true``);
* headroom left when the bundle finished, bundle duration;
* detection latency: from the sample that decided to the capture running;
* rise: working-set rise while the bundle was written (the app's growth included).

Then the bundle's *own* peak memory, measured without the app's growth: the
service stops at 85% of its limit, the cgroup's peak counter is reset, a full
bundle is requested with ``kill -USR2``, and the peak is read back.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from oomguard.heap.suspects import read_capture_suspects  # noqa: E402
from tests.support.realcgroup import RealCgroup, unavailable_reason  # noqa: E402

MiB = 1024 * 1024
LIMIT = 256 * MiB
LEAK = REPO / "tests" / "integration" / "programs" / "leak.py"
LEAK_LINE = next(n for n, line in enumerate(LEAK.read_text().splitlines(), 1) if "LEAK-LINE" in line)
LEAK_WHERE = f"{LEAK}:{LEAK_LINE}"


def env_for(dump_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OOMGUARD_")}
    env["OOMGUARD_DUMP_DIR"] = str(dump_dir)
    return env


def one_run(rate: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        dump_dir = Path(tmp) / "dumps"
        with RealCgroup(LIMIT) as cgroup:
            outcome = cgroup.run([sys.executable, str(LEAK), str(rate)], timeout=180, env=env_for(dump_dir))
        captured = False
        for capture in dump_dir.glob("*/memray.bin"):
            try:
                top = [s.where for s in read_capture_suspects(capture)[:3]]
            except OSError:
                continue
            captured = captured or LEAK_WHERE in top
        result: dict[str, Any] = {"killed": outcome.oom_killed, "captured": captured, "bundle": None}
        latencies = []
        for note in dump_dir.glob("*/armed.json"):
            data = json.loads(note.read_text())
            if data.get("decided_at") and data.get("capture_started"):
                latencies.append(data["armed_at"] - data["decided_at"])
        result["latency_s"] = min(latencies) if latencies else None
        for manifest_path in dump_dir.glob("*/manifest.json"):
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("complete"):
                result["bundle"] = manifest["bundle"]
        return result


def own_peak() -> dict[str, float]:
    """The bundle's own peak extra memory with the app not growing (v1: memory.max_usage_in_bytes)."""
    with tempfile.TemporaryDirectory() as tmp, RealCgroup(LIMIT) as cgroup:
        dump_dir = Path(tmp) / "dumps"
        proc = cgroup.popen(
            [sys.executable, str(LEAK), "20", "--stop-at", "0.85", "--hold", "30"],
            env=env_for(dump_dir) | {"OOMGUARD_ARM_AT": "0.95", "OOMGUARD_DUMP_AT": "0.99"},
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # "reached ..."
        time.sleep(1.0)
        peak_file = cgroup.path / ("memory.max_usage_in_bytes" if cgroup.version == 1 else "memory.peak")
        usage_file = cgroup.path / ("memory.usage_in_bytes" if cgroup.version == 1 else "memory.current")
        before = int(usage_file.read_text())
        peak_file.write_text("0\n")  # reset the peak to the current usage
        os.kill(proc.pid, signal.SIGUSR2)
        deadline = time.time() + 30
        while time.time() < deadline and not list(dump_dir.glob("*-signal/manifest.json")):
            time.sleep(0.05)
        peak = int(peak_file.read_text())
        manifests = list(dump_dir.glob("*-signal/manifest.json"))
        seconds = json.loads(manifests[0].read_text())["bundle"]["seconds"] if manifests else float("nan")
        proc.kill()
        cgroup.wait(proc, timeout=10)
        return {"extra_mib": (peak - before) / MiB, "seconds": seconds}


def fmt(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    if not values:
        return "-"
    return (
        f"{statistics.median(values) * scale:.2f}{unit} (min {min(values) * scale:.2f}, max {max(values) * scale:.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rates", default="20,100,400")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"bench_preoom needs real memory cgroups: {reason}")
        return 1
    print(f"pre-OOM evidence, 256 MiB cgroup v{RealCgroup(LIMIT).version}, {args.runs} runs per rate")
    header = f"{'MB/s':>5} {'killed':>7} {'capture':>8} {'bundle':>7}  {'headroom at finish MiB':<26} {'bundle s':<22} "
    print(header + f"{'latency ms':<22} {'rise MiB (app incl.)':<22}")
    for rate in (int(r) for r in args.rates.split(",")):
        runs = [one_run(rate) for _ in range(args.runs)]
        bundles = [r["bundle"] for r in runs if r["bundle"]]
        headroom = [
            b["headroom_at_finish_bytes"] / MiB for b in bundles if b.get("headroom_at_finish_bytes") is not None
        ]
        print(
            f"{rate:>5} {sum(r['killed'] for r in runs):>4}/{len(runs)} "
            f"{sum(r['captured'] for r in runs):>5}/{len(runs)} "
            f"{len(bundles):>4}/{len(runs)}  {fmt(headroom):<26} {fmt([b['seconds'] for b in bundles]):<22} "
            f"{fmt([r['latency_s'] for r in runs if r['latency_s'] is not None], 1000):<22} "
            f"{fmt([b['working_set_rise_bytes'] / MiB for b in bundles]):<22}"
        )
    own = [own_peak() for _ in range(3)]
    extra = [o["extra_mib"] for o in own]
    print()
    print(
        f"bundle's own peak extra memory (app at 85%, not growing; full bundle incl. a 2 s memray capture): "
        f"{fmt(extra, unit=' MiB')} = {statistics.median(extra) / (LIMIT / MiB):.1%} of the limit; "
        f"{fmt([o['seconds'] for o in own], unit=' s')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
