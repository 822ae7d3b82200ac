"""The oomguard demo: a leaking web service, its OOM kill, and the evidence oomguard left.

``make demo`` runs this. It starts the example FastAPI service
(``examples/service/app_fastapi.py``) with ``oomguard run -- uvicorn …`` on embedded
defaults, inside a real 256 MiB memory cgroup when this machine allows it (root and a
memory controller: the same thing ``docker run -m 256m`` does), and sends it
requests whose route leaks 512 KiB each (~20 MB/s) until the kernel OOM-kills it.
Then it shows what is on the dump volume: the bundle written before the kill
(verdict, the leaking line and route), and the post-mortem a restart writes.

Without root it runs the service without a limit, leaks for a while, and shows
``oomguard status`` and a bundle written on demand (``kill -USR2``) instead.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVICE = REPO / "examples" / "service"
sys.path.insert(0, str(REPO))

from tests.support.realcgroup import RealCgroup, unavailable_reason  # noqa: E402  (the test suite's harness)

MiB = 1024 * 1024
LIMIT = 256 * MiB


def say(text: str = "") -> None:
    print(text, flush=True)


def start_service(dump_dir: Path, cgroup: RealCgroup | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OOMGUARD_")}
    env |= {"OOMGUARD_DUMP_DIR": str(dump_dir), "OOMGUARD_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    argv = [
        str(Path(sys.executable).parent / "oomguard"),
        "run",
        "--",
        sys.executable,
        "-m",
        "uvicorn",
        "app_fastapi:app",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-access-log",
    ]
    if cgroup is not None:
        return cgroup.popen(argv, env=env, cwd=SERVICE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.Popen(argv, env=env, cwd=SERVICE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_port(proc: subprocess.Popen[str], log: list[str]) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        log.append(line)
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
    raise RuntimeError("the service did not start:\n" + "".join(log))


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def leak_until_dead(proc: subprocess.Popen[str], port: int, seconds: float, rate_per_s: float = 40.0) -> int:
    sent = 0
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < seconds:
        try:
            get(port, f"/reports/{sent}")
        except OSError:
            break
        sent += 1
        delay = started + sent / rate_per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return sent


def show_bundles(dump_dir: Path) -> None:
    manifests = sorted(dump_dir.glob("*/manifest.json"))
    if not manifests:
        say("  (no bundle on the volume)")
    for path in manifests:
        m: dict[str, Any] = json.loads(path.read_text())
        say(f"  {m['id']}  trigger={m['trigger']}  complete={m['complete']}")
        verdict = m.get("verdict") or {}
        if verdict:
            say(f"    verdict   {verdict.get('kind')} ({verdict.get('confidence')}): {verdict.get('summary')}")
        for suspect in [s for s in m.get("suspects", []) if s["size_bytes"] >= MiB][:2]:
            where = suspect["where"].replace(str(REPO) + "/", "")
            route = f"  route {suspect['route']}" if suspect.get("route") else ""
            say(f"    suspect   {where}  {suspect['size_bytes'] / MiB:.1f} MiB{route}")
        files = ", ".join(f["name"] for f in m.get("files", []))
        say(f"    files     {files}")
    say(f"  read a capture with memray's own tools: memray stats {dump_dir}/<bundle>/memray.bin")


def with_cgroup(dump_dir: Path) -> int:
    with RealCgroup(LIMIT, prefix="oomguard-demo") as cgroup:
        say(
            f"1. the example service runs under `oomguard run` in a real {LIMIT // MiB} MiB memory cgroup"
            f" (v{cgroup.version})"
        )
        log: list[str] = []
        proc = start_service(dump_dir, cgroup)
        port = wait_for_port(proc, log)
        say(f"   listening on 127.0.0.1:{port}; GET /reports/N leaks 512 KiB per request (~5 MB/s at 10 req/s)")
        sent = leak_until_dead(proc, port, seconds=180, rate_per_s=10.0)
        outcome = cgroup.wait(proc, timeout=30)
        log.append(outcome.stdout)
        killed = "OOM-killed by the kernel (SIGKILL)" if outcome.oom_killed else f"exit {outcome.returncode}"
        say(f"2. after {sent} requests the service was {killed}")
        for line in "".join(log).splitlines():
            if line.startswith("oomguard:"):
                say(f"   agent said: {line[len('oomguard: ') :]}")
        say("3. the dump volume, before any restart:")
        show_bundles(dump_dir)
        say("4. the service restarts on the same volume (as `restart: unless-stopped` would):")
        restart = start_service(dump_dir, cgroup)
        wait_for_port(restart, [])
        time.sleep(2.0)  # the agent finishes the killed process's capture on its first sample
        restart.send_signal(signal.SIGTERM)
        cgroup.wait(restart, timeout=30)
        show_bundles(dump_dir)
    return 0


def without_cgroup(dump_dir: Path, reason: str) -> int:
    say(f"(no real memory cgroup here: {reason}; the service runs without a limit, and nothing is killed)")
    log: list[str] = []
    proc = start_service(dump_dir, None)
    try:
        port = wait_for_port(proc, log)
        sent = leak_until_dead(proc, port, seconds=10)
        say(f"1. {sent} leaking requests sent to 127.0.0.1:{port}; `oomguard status` of the service:")
        subprocess.run([str(Path(sys.executable).parent / "oomguard"), "status", "--pid", str(proc.pid)], check=False)
        say("2. a bundle on demand: kill -USR2 <pid>")
        os.kill(proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not list(dump_dir.glob("*-signal/manifest.json")):
            time.sleep(0.1)
        show_bundles(dump_dir)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    return 0


def main() -> int:
    dump_dir = Path(tempfile.mkdtemp(prefix="oomguard-demo-")) / "dumps"
    say(f"oomguard demo: dumps go to {dump_dir}")
    reason = unavailable_reason()
    return without_cgroup(dump_dir, reason) if reason else with_cgroup(dump_dir)


if __name__ == "__main__":
    sys.exit(main())
