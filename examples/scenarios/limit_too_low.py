import oomguard.auto  # noqa: I001  (first line: the agent starts from OOMGUARD_* variables)

# Scenario: limit_too_low — a healthy working set that needs more room than the limit gives.
#
# The service loads its data set (sized to ~92% of its container's limit, the
# way a model or an index would be), then serves steady traffic that replaces
# entries without growing. No leak: the working set is flat, just too close to
# the limit. The agent says limit_too_low.
#
#     python examples/scenarios/limit_too_low.py [--fraction 0.92] [--seconds 120]

import argparse
import json
import sys
import time

import oomguard
from oomguard.cgroup import CgroupReader
from oomguard.diagnosis import Verdict, verdict_document

ENTRY = 256 * 1024


def report(verdict: Verdict) -> None:
    print("verdict", json.dumps(verdict_document(verdict)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=0.92)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    agent = oomguard.get_agent()
    if agent is not None:
        agent.on_verdict(report)
    reader = CgroupReader()
    data: list[bytes] = []
    start = time.monotonic()
    while True:  # load the data set (a few seconds)
        memory = reader.read()
        if not memory.limit_bytes or not memory.working_set_bytes:
            print("no memory limit: nothing to fill", file=sys.stderr)
            return 2
        if memory.working_set_bytes >= args.fraction * memory.limit_bytes:
            break
        data.extend(bytes([len(data) % 251]) * ENTRY for _ in range(16))
        time.sleep(0.01)
    served = 0
    while time.monotonic() - start < args.seconds:  # steady traffic: replace, never grow
        slot = served % len(data)
        data[slot] = bytes([served % 251]) * ENTRY
        json.dumps({"request": served, "items": list(range(40))})
        served += 1
        time.sleep(0.005)
    return 0


if __name__ == "__main__":
    sys.exit(main())
