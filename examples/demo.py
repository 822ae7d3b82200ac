"""The oomguard demo: start the agent on its embedded defaults and show what it sees.

Run with ``make demo``. Prints the live memory breakdown of this container (or
host) for a few samples, as ``oomguard status`` would.
"""

from __future__ import annotations

import sys
import time

import oomguard
from oomguard.cli.main import main as cli_main


def run(seconds: float = 3.0) -> int:
    """Start the agent, let it sample, print its view, stop."""
    agent = oomguard.start(interval=0.5)
    if agent is None:
        print("oomguard is disabled (OOMGUARD_ENABLED=0)")
        return 0
    time.sleep(seconds)
    samples = agent.timeline.snapshot()
    print(f"oomguard {oomguard.__version__}: {len(samples)} samples in {seconds:.0f} s")
    for sample in samples:
        ws = sample.working_set_bytes or 0
        print(
            f"  t={sample.monotonic - samples[0].monotonic:4.1f}s  working set {ws / 2**20:8.1f} MiB"
            f"  pressure {100 * (sample.pressure or 0):5.1f}%  RSS {(sample.process.rss_bytes or 0) / 2**20:6.1f} MiB"
        )
    print()
    code = cli_main(["status"])
    oomguard.stop()
    return code


if __name__ == "__main__":
    sys.exit(run())
