"""Run an ``examples/scenarios/`` program in a real memory cgroup and collect its verdict lines."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.realcgroup import RealCgroup

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
DEADLINE_S = 90.0


@dataclass(frozen=True)
class Run:
    verdicts: list[tuple[float, dict[str, Any]]]
    """(seconds since start, verdict document), in order."""
    returncode: int | None
    stderr: str

    def kinds(self) -> list[str]:
        return [str(v["kind"]) for _, v in self.verdicts]

    def first(self, kind: str) -> tuple[float, dict[str, Any]] | None:
        return next(((t, v) for t, v in self.verdicts if v["kind"] == kind), None)


def agent_env(dump_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OOMGUARD_")}
    env.update({"OOMGUARD_DUMP_DIR": str(dump_dir), "OOMGUARD_LOG_LEVEL": "INFO"})
    return env


def run_scenario(
    name: str,
    limit: int,
    tmp: Path,
    *args: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
    deadline: float = DEADLINE_S,
) -> Run:
    """Run a scenario in a fresh cgroup; stop at the first verdict ``until`` accepts, or at ``deadline``."""
    lines: queue.Queue[str | None] = queue.Queue()
    with RealCgroup(limit) as cgroup:
        started = time.monotonic()
        proc = cgroup.popen([sys.executable, str(SCENARIOS / f"{name}.py"), *args], env=agent_env(tmp / "dumps"))

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        verdicts: list[tuple[float, dict[str, Any]]] = []
        while (left := started + deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("verdict "):
                verdict = json.loads(line[len("verdict ") :])
                verdicts.append((time.monotonic() - started, verdict))
                if until is not None and until(verdict):
                    break
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
        reader.join(10)
    return Run(verdicts, proc.returncode, stderr)
