"""``oomguard run``: the environment it builds and which processes the bootstrap starts."""

from __future__ import annotations

import os

from oomguard.bootstrap import BOOTSTRAP_DIR, CHILDREN_ENV, DIR_ENV, ROOT_ENV, participates, strip_path
from oomguard.cli.run import build_env


def test_build_env_puts_the_bootstrap_first_and_keeps_the_users_path() -> None:
    env = build_env({"PYTHONPATH": "/app:/lib", "HOME": "/root", ROOT_ENV: "5"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOTSTRAP_DIR), "/app", "/lib"]
    assert env[DIR_ENV] == str(BOOTSTRAP_DIR)
    assert ROOT_ENV not in env  # a nested `oomguard run` starts a new tree
    assert env["HOME"] == "/root"
    assert CHILDREN_ENV not in env
    assert build_env({}, children=True)[CHILDREN_ENV] == "1"
    assert build_env({})["PYTHONPATH"] == str(BOOTSTRAP_DIR)


def test_build_env_is_idempotent() -> None:
    once = build_env({"PYTHONPATH": "/app"})
    assert build_env(once)["PYTHONPATH"] == once["PYTHONPATH"]


def test_the_first_python_process_is_the_root() -> None:
    env: dict[str, str] = {}
    assert participates(env, ["gunicorn"], pid=10, ppid=1)
    assert env[ROOT_ENV] == "10"


def test_multiprocessing_workers_of_the_root_participate() -> None:
    env = {ROOT_ENV: "10"}
    assert participates(env, ["-c", "--multiprocessing-fork"], pid=11, ppid=10)
    assert not participates(env, ["-c", "--multiprocessing-fork"], pid=12, ppid=11)


def test_other_descendants_do_not_unless_asked() -> None:
    assert not participates({ROOT_ENV: "10"}, ["script.py"], pid=11, ppid=10)
    assert participates({ROOT_ENV: "10", CHILDREN_ENV: "1"}, ["script.py"], pid=11, ppid=10)


def test_strip_path() -> None:
    assert strip_path(f"/boot{os.pathsep}/app{os.pathsep}", "/boot") == "/app"
    assert strip_path("/boot", "/boot") == ""
