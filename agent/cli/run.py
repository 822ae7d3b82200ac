"""``oomguard run [--children] -- CMD…``: run a command with the agent, no code change.

Puts the bootstrap ``sitecustomize`` first on ``PYTHONPATH`` and execs the
command (same pid, same signals, same exit status). A bad ``OOMGUARD_*`` value
is reported and the command runs without the agent.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from ..bootstrap import BOOTSTRAP_DIR, CHILDREN_ENV, DIR_ENV, ROOT_ENV
from ..config import Config
from ..errors import ConfigError

__all__ = ["add_parser", "build_env", "run"]


def add_parser(commands: Any) -> None:
    """Register ``run``."""
    parser = commands.add_parser(
        "run",
        help="run a command with the agent in its Python processes (gunicorn, uvicorn, python …)",
        description="Run CMD with oomguard started in its Python server processes: no code change.",
    )
    parser.add_argument(
        "--children",
        action="store_true",
        help="also start an agent in every Python process the command spawns (default: only its servers)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD …")
    parser.set_defaults(handler=run)


def build_env(environ: Mapping[str, str], *, children: bool = False) -> dict[str, str]:
    """The command's environment: the bootstrap first on PYTHONPATH, the user's entries after it."""
    env = {k: v for k, v in environ.items() if k not in (ROOT_ENV, CHILDREN_ENV, DIR_ENV)}
    folder = str(BOOTSTRAP_DIR)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.normpath(p) != folder]
    env["PYTHONPATH"] = os.pathsep.join([folder, *rest])
    env[DIR_ENV] = folder
    if children:
        env[CHILDREN_ENV] = "1"
    return env


def run(args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    """Exec the command; returns only when it cannot be started (127: not found, 126: not executable)."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("oomguard run: give a command, e.g. oomguard run -- gunicorn app:app", file=err)
        return 2
    env = dict(os.environ)
    try:
        enabled = Config.from_env(env).enabled
    except ConfigError as exc:
        print(f"oomguard run: {exc}; running the command without oomguard", file=err)
        enabled = False
    if enabled:
        env = build_env(env, children=args.children)
    err.flush()
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"oomguard run: {command[0]}: command not found", file=err)
        return 127
    except PermissionError:
        print(f"oomguard run: {command[0]}: permission denied", file=err)
        return 126
    return 0  # not reached: exec replaced this process
