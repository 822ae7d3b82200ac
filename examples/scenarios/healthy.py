import oomguard.auto  # noqa: I001  (first line: the agent starts from OOMGUARD_* variables)

# Scenario: healthy — a bounded LRU cache that warms up, then plateaus.
#
# Requests ask for keys from a space twice the cache's capacity: the cache
# fills in a few seconds, then every miss evicts the least recently used
# entry. Memory rises while it warms and stays flat after: a working set, not a
# leak. The agent says healthy.
#
#     python examples/scenarios/healthy.py [--capacity 2500] [--seconds 120]

import argparse
import json
import random
import sys
import time
from collections import OrderedDict

import oomguard
from oomguard.diagnosis import Verdict, verdict_document


def report(verdict: Verdict) -> None:
    print("verdict", json.dumps(verdict_document(verdict)), flush=True)


class LRU:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[int, bytes] = OrderedDict()

    def get(self, key: int) -> bytes:
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
            return value
        value = bytes([key % 251]) * 8192  # "render" the entry
        self.entries[key] = value
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--capacity", type=int, default=2500)
    parser.add_argument("--per-s", type=float, default=400.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    agent = oomguard.get_agent()
    if agent is not None:
        agent.on_verdict(report)
    cache = LRU(args.capacity)
    rng = random.Random(11)
    start = time.monotonic()
    served = 0
    while time.monotonic() - start < args.seconds:
        for _ in range(max(1, int(args.per_s / 50))):
            cache.get(rng.randrange(2 * args.capacity))
            json.dumps({"request": served, "items": list(range(40))})
            served += 1
        time.sleep(max(0.0, start + served / args.per_s - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
