import oomguard.auto  # noqa: I001  (first line: the agent starts from OOMGUARD_* variables)

# Scenario: python_heap_leak — an unbounded per-tenant cache.
#
# Every request renders a response (garbage at once) and caches a copy of it
# under a key that never repeats, so the cache only grows. The agent sees anon
# climb, opens heap windows, finds Python objects explaining the growth and
# names the cache line below (CACHE-LINE) as the top suspect.
#
#     python examples/scenarios/python_heap_leak.py [--mb-per-s 2] [--seconds 120]

import argparse
import json
import sys
import time

import oomguard
from oomguard.diagnosis import Verdict, verdict_document

tenant_cache: dict[tuple[str, int], dict[str, object]] = {}


def report(verdict: Verdict) -> None:
    print("verdict", json.dumps(verdict_document(verdict)), flush=True)


def handle(request: int, payload: int) -> str:
    body = json.dumps({"request": request, "items": list(range(40))})
    tenant_cache[(f"tenant-{request % 40}", request)] = {"id": request, "body": b"r" * payload}  # CACHE-LINE
    return body


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb-per-s", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    agent = oomguard.get_agent()
    if agent is not None:
        agent.on_verdict(report)
    payload = 4096
    per_s = args.mb_per_s * 1e6 / payload
    start = time.monotonic()
    served = 0
    while time.monotonic() - start < args.seconds:
        for _ in range(max(1, int(per_s / 50))):
            handle(served, payload)
            served += 1
        time.sleep(max(0.0, start + served / per_s - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
