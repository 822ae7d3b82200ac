import oomguard.auto  # noqa: I001  (first line: the agent starts from OOMGUARD_* variables)

# Scenario: thread_leak — every request starts a worker thread that never finishes.
#
# Each worker holds a buffer and then waits forever on an event nobody sets.
# Threads and memory climb together; the agent says thread_leak, with the
# memory per thread.
#
#     python examples/scenarios/thread_leak.py [--threads-per-s 4] [--seconds 120]

import argparse
import json
import sys
import threading
import time

import oomguard
from oomguard.diagnosis import Verdict, verdict_document

never = threading.Event()


def report(verdict: Verdict) -> None:
    print("verdict", json.dumps(verdict_document(verdict)), flush=True)


def worker(size: int) -> None:
    buffer = b"w" * size  # held for the life of the thread
    never.wait()
    del buffer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads-per-s", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    agent = oomguard.get_agent()
    if agent is not None:
        agent.on_verdict(report)
    start = time.monotonic()
    started = 0
    while time.monotonic() - start < args.seconds:
        threading.Thread(target=worker, args=(256 * 1024,), name=f"job-{started}", daemon=True).start()
        started += 1
        time.sleep(max(0.0, start + started / args.threads_per_s - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
