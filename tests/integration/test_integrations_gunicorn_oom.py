"""``oomguard run -- gunicorn -w 3`` in a real 384 MiB cgroup where one route leaks.

The kernel OOM-kills the leaking worker, gunicorn respawns it and the service
lives on. Before the kill, that worker (and only it: the others stand by) left
its evidence on the volume: a bundle naming the leaking line and the route. The
kill is recorded once, with the victim's pid, and the other workers never stop.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from oomguard.oomkills import KILLS_FILE, read_kills
from tests.support.realcgroup import RealCgroup, require
from tests.support.servers import BIN, PROGRAMS, server_env, wait_for_port

MiB = 1024 * 1024
APP = PROGRAMS / "web_flask.py"
LEAK_LINE = next(n for n, line in enumerate(APP.read_text().splitlines(), 1) if "LEAK-LINE" in line)
LEAK_WHERE = f"{APP}:{LEAK_LINE}"


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> str:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, (path, response.status, body)
        return body
    finally:
        if own:
            conn.close()


def manifests(dump_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(dump_dir.glob("*/manifest.json"))]


def wait_until(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.realcgroup
def test_a_leaking_gunicorn_worker_is_killed_with_its_evidence_on_the_volume(tmp_path: Path) -> None:
    require()
    dump_dir = tmp_path / "dumps"
    log = tmp_path / "gunicorn.log"
    env = server_env(OOMGUARD_DUMP_DIR=str(dump_dir), OOMGUARD_LOG_LEVEL="INFO")
    argv = [
        str(BIN / "oomguard"),
        "run",
        "--",
        str(BIN / "gunicorn"),
        "--no-control-socket",
        "-w",
        "3",
        "-k",
        "gthread",
        "--threads",
        "2",
    ]
    argv += ["-b", "127.0.0.1:0", "--graceful-timeout", "2", "web_flask:app"]
    with RealCgroup(384 * MiB) as cgroup, log.open("wb") as out:
        proc = cgroup.popen(argv, env=env, cwd=PROGRAMS, stdout=out.fileno(), stderr=subprocess.STDOUT)
        master = proc.pid
        try:
            port = wait_for_port(proc, log)  # type: ignore[arg-type]
            workers = wait_until("3 workers", lambda: len(cgroup.pids()) == 4 and set(cgroup.pids()) - {master}, 60)
            oom_before = cgroup.oom_kill_count()
            # One keep-alive connection: one worker serves every leaking request.
            leak_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            leaker = int(get(port, "/leak?mib=1", leak_conn))
            served: set[int] = set()
            failures = 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    get(port, "/leak?mib=1", leak_conn)
                except (OSError, http.client.HTTPException):
                    break  # the leaking worker is gone
                try:
                    served.add(int(get(port, "/pid")))
                except (OSError, http.client.HTTPException):
                    failures += 1  # a fresh connection the dying worker had accepted
                time.sleep(0.02)  # ~30 MiB/s of leak
            leak_conn.close()
            assert cgroup.oom_kill_count() > oom_before, log.read_text()[-3000:]
            survivors = workers - {leaker}
            # The kill is recorded once on the volume, naming the victim and its evidence.
            kill = wait_until("the kill record", lambda: read_kills(dump_dir), 30)[0]
            assert kill["pids"][0] == leaker, kill
            assert kill["evidence"], kill
            # The survivor that recorded the kill finishes the victim's cut-short capture (post-mortem).
            wait_until("the post-mortem", lambda: any(m["trigger"] == "oom" for m in manifests(dump_dir)), 60)
            # gunicorn respawns the worker; the others never stopped.
            wait_until("a respawned worker", lambda: len(cgroup.pids()) == 4 and leaker not in cgroup.pids(), 60)
            assert survivors <= set(cgroup.pids())
            after = {int(get(port, "/pid")) for _ in range(30)}
            assert after - {leaker}
            assert failures <= 2, failures
            assert served - {leaker}, served
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
    text = log.read_text()
    assert text.count("OOM-killed pid") == 1, text[-3000:]
    found = manifests(dump_dir)
    # Only the leaking worker wrote bundles: N workers did not write N bundles.
    assert {m["pid"] for m in found} == {leaker}, [(m["pid"], m["trigger"]) for m in found]
    complete = [m for m in found if m["complete"]]
    assert complete, text[-3000:]
    bundle = complete[0]
    assert bundle["trigger"] in ("threshold", "predicted")
    assert bundle["memory"]["limit_bytes"] == 384 * MiB
    routes = {r["route"]: r for r in bundle["routes"]}
    assert routes["/leak"]["retained_bytes"] > 50 * MiB
    assert routes["/leak"]["handler"] == f"{APP}:leak"
    # The leaking line, read from the worker's memray capture, and the route it serves.
    suspects = [s for m in found for s in m["suspects"]]
    assert any(s["where"] == LEAK_WHERE and s.get("route") == "/leak" for s in suspects), suspects
    assert any(s["where"] == "route /leak" for s in bundle["suspects"]), bundle["suspects"]
    named = [s for s in bundle["suspects"] if s["where"] == LEAK_WHERE]
    assert all(s["route"] == "/leak" for s in named), named
    postmortem = next(m for m in found if m["trigger"] == "oom")
    assert postmortem["complete"] is False
    assert postmortem["oom_kill_confirmed"] is True
    assert kill["evidence"][0] in {m["id"] for m in found}
    assert (dump_dir / KILLS_FILE).exists()
    assert os.stat(dump_dir / KILLS_FILE).st_mode & 0o777 == 0o600
