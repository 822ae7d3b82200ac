"""The diagnosis, measured: time-to-verdict per scenario, heap-window overhead, cost of one diagnosis.

Run as root: ``.venv/bin/python tests/benchmarks/bench_diagnosis.py [--runs 1] [--cycles 2]``.

* **time to verdict**: every scenario of ``examples/scenarios/`` runs in a fresh
  memory cgroup with the agent started by ``import oomguard.auto``; the time
  from the start of the process to the first verdict of the right kind.
* **heap-sampling overhead**: an allocation-heavy request loop (JSON in and out,
  a few objects kept per request) runs in this process; a driver thread plays
  the sampler and opens a heap window whenever the duty cycle allows one (the
  worst case: growth suspected all the time). Throughput with windows on and
  off is measured in alternating blocks of one duty cycle each, in one run, and
  given as a ratio; the slowdown while a window is open is printed too.
* **cost of one diagnosis** on a full timeline (3600 samples), which the
  sampler thread pays every 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from oomguard.diagnosis import diagnose  # noqa: E402
from oomguard.heap.windows import HeapEvidence, HeapWindows, WindowPolicy, WindowResult  # noqa: E402
from tests.support.realcgroup import unavailable_reason  # noqa: E402
from tests.support.samples import MiB, make_sample  # noqa: E402
from tests.support.scenarios import run_scenario  # noqa: E402

CASES = [
    ("python_heap_leak", 512 * MiB, "python_heap_leak"),
    ("native_leak", 512 * MiB, "native_leak"),
    ("thread_leak", 512 * MiB, "thread_leak"),
    ("limit_too_low", 256 * MiB, "limit_too_low"),
    ("page_cache_growth", 512 * MiB, "page_cache_growth"),
    ("healthy", 256 * MiB, "healthy"),
]


def time_to_verdict(name: str, limit: int, kind: str, deadline: float = 120.0) -> tuple[float | None, list[str]]:
    with tempfile.TemporaryDirectory(dir=REPO / "build" if (REPO / "build").is_dir() else None) as tmp:
        extra = [tmp] if name == "page_cache_growth" else []
        run = run_scenario(name, limit, Path(tmp), *extra, until=lambda v: v["kind"] == kind, deadline=deadline)
    found = run.first(kind)
    return (found[0] if found else None), run.kinds()


# -- heap-window overhead ------------------------------------------------------------

kept: list[dict[str, object]] = []


def request(i: int) -> int:
    payload = json.dumps({"id": i, "items": [{"n": n, "name": f"item-{n}"} for n in range(20)]})
    document = json.loads(payload)
    if i % 10 == 0:
        kept.append(document)  # a slow leak: growth is suspected, windows keep opening
    return len(payload)


def overhead(policy: WindowPolicy, cycles: int) -> dict[str, float]:
    cycle = policy.seconds / policy.duty
    windows = HeapWindows(policy)
    stop = threading.Event()
    enabled = threading.Event()

    def driver() -> None:  # the sampler thread's part: poll every 50 ms, open when allowed
        while not stop.wait(0.05):
            if windows.active:
                windows.poll()
            elif enabled.is_set() and windows.ready():
                windows.open()

    thread = threading.Thread(target=driver, daemon=True)
    thread.start()
    rates: dict[str, list[float]] = {"on": [], "off": []}
    inside: list[float] = []
    outside: list[float] = []
    i = 0
    for block in range(2 * cycles):
        mode = "on" if block % 2 == 0 else "off"
        if mode == "on":
            enabled.set()
        else:
            enabled.clear()
            windows.close()
        end = time.monotonic() + cycle
        done = 0
        begun = time.monotonic()
        while (now := time.monotonic()) < end:
            tick_end, tick_done, active = now + 0.1, 0, windows.active
            while time.monotonic() < tick_end:
                request(i)
                i += 1
                tick_done += 1
            done += tick_done
            if mode == "on":
                (inside if active and windows.active else outside).append(tick_done / 0.1)
        rates[mode].append(done / (time.monotonic() - begun))
        kept.clear()
    stop.set()
    thread.join()
    windows.close()
    on, off = statistics.mean(rates["on"]), statistics.mean(rates["off"])
    return {
        "on": on,
        "off": off,
        "ratio": off / on,
        "in_window_ratio": statistics.median(outside) / statistics.median(inside)
        if inside and outside
        else float("nan"),
        "duty_measured": windows.traced_seconds / (cycles * cycle),
    }


# -- cost of one diagnosis -------------------------------------------------------------


def diagnosis_cost() -> tuple[float, float]:
    samples = [make_sample(float(t), anon=(80 + t // 30) * MiB, threads=4) for t in range(3600)]
    windows = HeapEvidence((WindowResult(3500.0, 4.0, 4 * MiB, 1000, 1000, 4 * MiB, (), "time"),))
    times = []
    for _ in range(20):
        started = time.perf_counter()
        diagnose(samples, windows)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cycles", type=int, default=2, help="duty cycles per mode in the overhead measurement")
    parser.add_argument("--skip-scenarios", action="store_true")
    args = parser.parse_args()

    median_s, worst_s = diagnosis_cost()
    print(f"one diagnosis over 3600 samples: median {1000 * median_s:.1f} ms, max {1000 * worst_s:.1f} ms")

    policy = WindowPolicy()
    result = overhead(policy, args.cycles)
    print(
        f"heap windows ({policy.seconds:.0f} s at {100 * policy.duty:.0f}% duty, {policy.frames} frames), "
        f"allocation-heavy loop: off {result['off']:.0f} req/s, on {result['on']:.0f} req/s, "
        f"ratio {result['ratio']:.3f}x; inside a window {result['in_window_ratio']:.2f}x slower; "
        f"measured duty {100 * result['duty_measured']:.1f}%"
    )

    if args.skip_scenarios:
        return 0
    reason = unavailable_reason()
    if reason is not None:
        print(f"time to verdict: skipped ({reason})")
        return 0
    print(f"\n{'scenario':<20} {'verdict':<20} time to verdict (s)")
    for name, limit, kind in CASES:
        times = []
        for _ in range(args.runs):
            found, kinds = time_to_verdict(name, limit, kind)
            times.append(f"{found:.1f}" if found is not None else f"none ({', '.join(kinds) or '-'})")
        print(f"{name:<20} {kind:<20} {'  '.join(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
