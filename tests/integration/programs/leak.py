"""A service with an unbounded per-tenant cache: the Python heap leak the guard must catch.

Usage: leak.py RATE_MB_PER_S [--blob BYTES] [--stop-at FRACTION] [--hold SECONDS] [--then-free]

Grows at about RATE MB/s (rows holding a ``--blob``-byte payload) until killed,
or until the working set reaches FRACTION of the cgroup limit (then holds,
optionally frees and holds again, and exits 0). Blobs of 256 KiB and more are
mmap'ed by malloc, so freeing them really returns the memory.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import oomguard.auto  # noqa: F401  (the one import line)
from oomguard.cgroup import CgroupReader

ROW_OVERHEAD = 300  # the dict and key around each blob

tenant_cache: dict[tuple[str, int], dict[str, object]] = {}


def add_rows(first: int, count: int, blob: int) -> None:
    for i in range(first, first + count):
        tenant_cache[(f"tenant-{i % 50}", i)] = {"id": i, "tenant": i % 50, "blob": b"x" * blob}  # LEAK-LINE


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rate", type=float)
    parser.add_argument("--blob", type=int, default=4096)
    parser.add_argument("--stop-at", type=float)
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--then-free", action="store_true")
    args = parser.parse_args()
    reader = CgroupReader()
    rows_per_s = args.rate * 1e6 / (args.blob + ROW_OVERHEAD)
    step = max(1, int(rows_per_s / 100))  # ~100 steps per second
    start = time.monotonic()
    done = 0
    while True:
        if args.stop_at is not None:
            memory = reader.read()
            if (
                memory.working_set_bytes
                and memory.limit_bytes
                and (memory.working_set_bytes >= args.stop_at * memory.limit_bytes)
            ):
                break
        add_rows(done, step, args.blob)
        done += step
        delay = start + done / rows_per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(f"reached {args.stop_at} after {done} rows", flush=True)
    time.sleep(args.hold)
    if args.then_free:
        tenant_cache.clear()
        gc.collect()
        print("freed", flush=True)
        time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
