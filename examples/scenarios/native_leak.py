import oomguard.auto  # noqa: I001  (first line: the agent starts from OOMGUARD_* variables)

# Scenario: native_leak — memory malloc'ed through ctypes and never freed.
#
# A "request" asks libc for a buffer, fills it (so the pages are really
# resident) and forgets the pointer, as a C extension with a missing free()
# would. Python's tracing cannot see it: anon climbs while Python objects do
# not, and the agent says native_leak with the RSS − Python gap.
#
#     python examples/scenarios/native_leak.py [--mb-per-s 2] [--seconds 120]

import argparse
import ctypes
import json
import sys
import time

import oomguard
from oomguard.diagnosis import Verdict, verdict_document

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.memset.restype = ctypes.c_void_p
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]


def report(verdict: Verdict) -> None:
    print("verdict", json.dumps(verdict_document(verdict)), flush=True)


def handle(request: int, size: int) -> str:
    buffer = libc.malloc(size)  # never freed: the leak
    if buffer:
        libc.memset(buffer, request % 251, size)
    return json.dumps({"request": request, "items": list(range(40))})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb-per-s", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    agent = oomguard.get_agent()
    if agent is not None:
        agent.on_verdict(report)
    size = 64 * 1024
    per_s = args.mb_per_s * 1e6 / size
    start = time.monotonic()
    served = 0
    while time.monotonic() - start < args.seconds:
        handle(served, size)
        served += 1
        time.sleep(max(0.0, start + served / per_s - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
