"""The wheel ships the integrations and ``oomguard run``'s bootstrap folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_integrations_and_the_run_bootstrap(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("oomguard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "oomguard/_bootstrap/sitecustomize.py" in names
    assert "oomguard/_bootstrap/__init__.py" not in names  # a folder for PYTHONPATH, not a package
    for module in ("asgi", "starlette", "wsgi", "django", "gunicorn", "autowrap"):
        assert f"oomguard/integrations/{module}.py" in names
    assert {"oomguard/traffic.py", "oomguard/bootstrap.py", "oomguard/cli/run.py"} <= names
