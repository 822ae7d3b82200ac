"""Cost of one sample and of the sampler thread, agent on vs off, in one run.

Run: ``make bench`` (or ``.venv/bin/python tests/benchmarks/bench_sampler.py``).

Prints:
* median/p99 cost of one ``SampleSource.take()`` and of its parts (µs);
* CPU the sampler thread uses per second of wall time at 1 s and 50 ms intervals;
* throughput of a pure-Python workload with the agent off and on (ratio).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from oomguard.agent import Agent
from oomguard.config import Config
from oomguard.procfs import read_process
from oomguard.sample import PythonMemory, SampleSource


def per_call_us(fn: Callable[[], object], repeat: int = 5000) -> tuple[float, float]:
    """Median and p99 of one call, in µs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def sampler_cpu_per_second(interval: float, seconds: float = 5.0) -> float:
    """CPU seconds the sampler thread burns per wall second (thread CPU clock)."""
    agent = Agent(Config(interval=interval))
    agent.start()
    time.sleep(seconds)
    agent.stop()
    return agent.sampler.cpu_seconds / seconds


def workload(seconds: float) -> int:
    """A pure-Python, allocation-heavy loop: iterations done in ``seconds``."""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        for _ in range(1000):
            d = {"a": [n, n + 1], "b": str(n)}
            n += len(d)
    return n


def throughput(interval: float | None, seconds: float = 3.0) -> float:
    agent = Agent(Config(interval=interval)) if interval is not None else None
    if agent is not None:
        agent.start()
    try:
        return workload(seconds) / seconds
    finally:
        if agent is not None:
            agent.stop()


def main() -> None:
    source = SampleSource()
    reader = source.cgroup_reader
    print(f"oomguard sampler benchmark ({threading.active_count()} thread(s) before start)")
    print(f"cgroup: v{reader.location.version} {reader.location.directory}" if reader else "cgroup: none")
    rows: list[tuple[str, Callable[[], object]]] = [("SampleSource.take() (whole sample)", source.take)]
    if reader is not None:
        rows.append(("  cgroup read", reader.read))
    rows += [("  process read (/proc/self)", read_process), ("  python counters", PythonMemory.now)]
    print(f"{'':40} {'median µs':>10} {'p99 µs':>10}")
    for name, fn in rows:
        median, p99 = per_call_us(fn)
        print(f"{name:40} {median:10.1f} {p99:10.1f}")
    print()
    for interval in (1.0, 0.05):
        share = sampler_cpu_per_second(interval)
        print(
            f"sampler at {interval:>4} s interval: {share * 1e3:7.3f} ms CPU per s of wall time ({share:.4%} of a core)"
        )
    print()
    off = throughput(None)
    on_1s = throughput(1.0)
    on_50ms = throughput(0.05)
    print(f"{'workload':30} {'iter/s':>12} {'vs off':>8}")
    print(f"{'agent off':30} {off:12.0f} {1.0:8.3f}")
    print(f"{'agent on, 1 s interval':30} {on_1s:12.0f} {on_1s / off:8.3f}")
    print(f"{'agent on, 50 ms interval':30} {on_50ms:12.0f} {on_50ms / off:8.3f}")


if __name__ == "__main__":
    main()
