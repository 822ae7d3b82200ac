"""``oomguard`` command line: one module per subcommand; errors are caught here, once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import OomguardError
from . import run, status

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="oomguard", description="Memory agent for containerised Python services.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status.add_parser(commands)
    run.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # `oomguard status | head`
        sys.stderr.close()
        return 0
    except OomguardError as exc:
        print(f"oomguard: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
