import oomguard.auto  # noqa: I001  (first line: the agent starts from OOMGUARD_* variables)

# Scenario: page_cache_growth — a service writing files and reading them back.
#
# The kernel keeps what was written and read in the page cache, charged to the
# container's memory cgroup: usage climbs towards the limit while anon stays
# flat. That memory is reclaimable (the kernel drops it at the limit); the agent
# says page_cache_growth, never a leak.
#
#     python examples/scenarios/page_cache_growth.py DIR [--mb-per-s 4] [--seconds 120]

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import oomguard
from oomguard.diagnosis import Verdict, verdict_document

CHUNK = 1024 * 1024


def report(verdict: Verdict) -> None:
    print("verdict", json.dumps(verdict_document(verdict)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path, nargs="?", help="a folder on a disk (not tmpfs: that is shmem)")
    parser.add_argument("--mb-per-s", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    agent = oomguard.get_agent()
    if agent is not None:
        agent.on_verdict(report)
    folder = Path(tempfile.mkdtemp(prefix="page-cache-", dir=args.dir))
    block = b"p" * CHUNK
    per_s = args.mb_per_s * 1e6 / CHUNK
    rng = random.Random(7)
    start = time.monotonic()
    written = 0
    try:
        while time.monotonic() - start < args.seconds:
            (folder / f"log-{written}.bin").write_bytes(block)
            written += 1
            # Re-read a few recent files (a service serving what it wrote).
            for _ in range(2):
                (folder / f"log-{rng.randrange(max(1, written - 16), written + 1) - 1}.bin").read_bytes()
            time.sleep(max(0.0, start + written / per_s - time.monotonic()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
