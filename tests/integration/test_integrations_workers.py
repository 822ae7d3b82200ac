"""Every worker runs its own agent: gunicorn pre-fork (with and without --preload) and uvicorn --workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oomguard.procfs import runs_agent
from tests.support.servers import BIN, http, serve, server_env


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/*/stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    tree = [pid]
    for parent in tree:
        tree += [child for child, p in parents.items() if p == parent]
    return tree


def agents_in_tree(pid: int) -> dict[int, bool | None]:
    return {p: runs_agent(Path(f"/proc/{p}")) for p in descendants(pid)}


def wait_for_agents(pid: int, expected: int, timeout: float = 30.0) -> dict[int, bool | None]:
    deadline = time.monotonic() + timeout
    found: dict[int, bool | None] = {}
    while time.monotonic() < deadline:
        found = agents_in_tree(pid)
        if sum(1 for v in found.values() if v) >= expected:
            return found
        time.sleep(0.05)
    return found


@pytest.mark.parametrize("preload", [False, True])
def test_gunicorn_workers_each_run_an_agent(tmp_path: Path, preload: bool) -> None:
    argv = [str(BIN / "oomguard"), "run", "--", str(BIN / "gunicorn"), "--no-control-socket", "-w", "2"]
    argv += ["-b", "127.0.0.1:0", *(["--preload"] if preload else []), "web_flask:app"]
    with serve(argv, tmp_path / "server.log", env=server_env(OOMGUARD_DUMP_DIR=str(tmp_path / "d"))) as server:
        found = wait_for_agents(server.proc.pid, 3)
        counted = json.loads(http(server.port, get("/_stats")).partition(b"\r\n\r\n")[2])
    alive = {pid: agent for pid, agent in found.items() if agent is not None}  # None: gone meanwhile
    assert len(alive) == 3, found  # the master and two workers
    assert all(alive.values()), found
    assert counted["pid"] in found
    assert counted["pid"] != server.proc.pid  # a worker counts its own requests


def test_uvicorn_workers_each_run_an_agent(tmp_path: Path) -> None:
    argv = [str(BIN / "oomguard"), "run", "--", str(BIN / "uvicorn"), "web_starlette:app", "--workers", "2"]
    argv += ["--host", "127.0.0.1", "--port", "0"]
    with serve(argv, tmp_path / "server.log", env=server_env(OOMGUARD_DUMP_DIR=str(tmp_path / "d"))) as server:
        found = wait_for_agents(server.proc.pid, 3)
        http(server.port, get("/"))
        counted = json.loads(http(server.port, get("/_stats")).partition(b"\r\n\r\n")[2])
    workers = {pid: agent for pid, agent in found.items() if pid != server.proc.pid}
    # uvicorn's supervisor and its spawned workers (plus multiprocessing's resource tracker, if any)
    assert sum(1 for agent in workers.values() if agent) >= 2, found
    assert found[server.proc.pid]
    assert counted["pid"] in workers


CHILD = "import oomguard, os; print(oomguard.get_agent() is None, os.environ.get('PYTHONPATH', '-'))"
PARENT = (
    "import subprocess, sys; sys.stdout.write(subprocess.check_output([sys.executable, '-c', sys.argv[1]], text=True))"
)


def test_a_script_the_app_runs_gets_no_agent(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "oomguard"), "run", "--", sys.executable, "-c", PARENT, CHILD],
        env=server_env(OOMGUARD_DUMP_DIR=str(tmp_path / "d")),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    no_agent, pythonpath = result.stdout.split()
    assert no_agent == "True", result.stderr
    assert "_bootstrap" not in pythonpath  # nor for the script's own children
