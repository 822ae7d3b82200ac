"""The wheel installs into a fresh venv and works from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("oomguard-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True, capture_output=True, timeout=600
    )
    probe = (
        "import json, pathlib, oomguard, oomguard.integrations, oomguard.cgroup, oomguard.cli.main;"
        "pkg = pathlib.Path(oomguard.__file__).parent;"
        "print(json.dumps({'file': str(pkg), 'typed': (pkg / 'py.typed').exists(),"
        " 'integrations': oomguard.integrations.__name__, 'version': oomguard.__version__}))"
    )
    result = subprocess.run([str(python), "-c", probe], cwd="/", capture_output=True, text=True, check=True)
    info = json.loads(result.stdout)
    assert info["file"].startswith(str(env_dir))
    assert info["typed"]
    assert info["integrations"] == "oomguard.integrations"
    status = subprocess.run(
        [str(env_dir / "bin" / "oomguard"), "status", "--json"], cwd="/", capture_output=True, text=True, check=True
    )
    assert json.loads(status.stdout)["memory"]["limit_bytes"] > 0


def test_editable_install_imports_from_anywhere() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import oomguard, oomguard.integrations; print(oomguard.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()) == REPO / "agent" / "__init__.py"
