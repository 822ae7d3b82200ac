"""Lay out ``build/typecheck/oomguard`` as the package installs (symlinks), for mypy.

The repo folders ``agent/`` and ``integrations/`` install as ``oomguard`` and
``oomguard.integrations`` (setuptools ``package-dir``); mypy has no such mapping
and cannot follow the editable install's import hook, so it reads this tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build(target: Path = REPO / "build" / "typecheck") -> Path:
    """(Re)create the symlink tree and return its root."""
    package = target / "oomguard"
    if target.exists():
        shutil.rmtree(target)
    package.mkdir(parents=True)
    for entry in (REPO / "agent").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "integrations").symlink_to(REPO / "integrations")
    return target


if __name__ == "__main__":
    build()
