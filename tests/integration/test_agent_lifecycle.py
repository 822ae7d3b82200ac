"""The agent in real processes: start/stop, the sampler thread, fork, ``import oomguard.auto``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OOMGUARD_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


FORK = """
import json, os, threading, time
import oomguard

agent = oomguard.start(interval=0.02)
time.sleep(0.2)
parent_pid = os.getpid()
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    time.sleep(0.3)
    me = oomguard.get_agent()
    samples = me.timeline.snapshot()
    names = [t.name for t in threading.enumerate()]
    comm = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
    os.write(write_end, json.dumps({
        "pid": os.getpid(), "agent_pid": me.pid, "running": me.running,
        "last_pid": samples[-1].pid, "own_pid_samples": sum(s.pid == os.getpid() for s in samples),
        "threads": names, "comm": comm,
    }).encode())
    os._exit(0)
os.close(write_end)
os.waitpid(child, 0)
child_report = json.loads(os.read(read_end, 65536))
before = len([s for s in agent.timeline.snapshot() if s.pid == parent_pid])
time.sleep(0.2)
after = len([s for s in agent.timeline.snapshot() if s.pid == parent_pid])
print(json.dumps({"parent": parent_pid, "child": child_report, "parent_kept_sampling": after > before,
                  "parent_other_pids": sum(s.pid != parent_pid for s in agent.timeline.snapshot())}))
oomguard.stop()
"""


def test_forked_child_samples_its_own_pid_and_parent_is_unaffected() -> None:
    result = run_python(FORK)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    child = report["child"]
    assert child["pid"] != report["parent"]
    assert child["agent_pid"] == child["pid"]
    assert child["running"]
    assert child["last_pid"] == child["pid"]
    assert child["own_pid_samples"] >= 5
    assert child["threads"].count("oomguard-sampler") == 1
    assert "oomguard-agent" in child["comm"]
    assert report["parent_kept_sampling"]
    assert report["parent_other_pids"] == 0


def test_start_twice_is_harmless_and_stop_joins_the_thread() -> None:
    result = run_python(
        """
        import threading, time, oomguard
        a = oomguard.start(interval=0.05)
        b = oomguard.start()
        time.sleep(0.2)
        print(a is b, [t.name for t in threading.enumerate()].count("oomguard-sampler"), len(a.timeline) >= 2)
        oomguard.stop()
        print([t.name for t in threading.enumerate()].count("oomguard-sampler"), oomguard.get_agent())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["True 1 True", "0 None"]


def test_importing_starts_nothing() -> None:
    result = run_python(
        """
        import threading, oomguard, oomguard.cgroup, oomguard.sampler, oomguard.cli.main
        print(len(threading.enumerate()), oomguard.get_agent())
        """
    )
    assert result.stdout.strip() == "1 None", result.stderr


def test_auto_starts_from_environment() -> None:
    result = run_python(
        """
        import time, oomguard.auto, oomguard
        agent = oomguard.get_agent()
        time.sleep(0.3)
        print(agent.config.interval, agent.running, len(agent.timeline) >= 3)
        """,
        env={"OOMGUARD_INTERVAL": "0.05"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.05 True True"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"OOMGUARD_INTERVAL": "soon"}, "OOMGUARD_INTERVAL='soon'"),
        ({"OOMGUARD_ARM_AT": "2"}, "OOMGUARD_ARM_AT=2.0"),
    ],
)
def test_auto_with_a_bad_value_logs_once_and_the_app_runs(env: dict[str, str], fragment: str) -> None:
    result = run_python("import oomguard.auto, oomguard; print('app ran', oomguard.get_agent())", env=env)
    assert result.returncode == 0
    assert result.stdout.strip() == "app ran None"
    assert result.stderr.count(fragment) == 1, result.stderr
    assert "oomguard is off" in result.stderr


def test_start_raises_config_error() -> None:
    result = run_python(
        """
        import oomguard
        try:
            oomguard.start(arm_at=0.95, dump_at=0.9)
        except oomguard.ConfigError as exc:
            print("ConfigError:", exc)
        """
    )
    assert "ConfigError: OOMGUARD_DUMP_AT=0.9" in result.stdout, result.stderr


def test_disabled_starts_nothing() -> None:
    result = run_python(
        "import threading, oomguard.auto, oomguard; print(oomguard.get_agent(), len(threading.enumerate()))",
        env={"OOMGUARD_ENABLED": "0"},
    )
    assert result.stdout.strip() == "None 1", result.stderr
