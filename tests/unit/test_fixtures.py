"""Every captured or kernel-format tree: discovery, limit and breakdown, directly and via the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from oomguard.cgroup import CgroupReader
from oomguard.cli.main import build_parser
from oomguard.cli.status import run

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cgroup"
LAYOUTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").exists())


def expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "expected.json").read_text())
    return data


def test_all_layouts_are_present() -> None:
    assert set(LAYOUTS) >= {
        "v1_host",
        "v1_docker",
        "v1_host_path_invisible",
        "v2_namespace",
        "v2_nested",
        "v2_nolimit",
        "hybrid",
    }


@pytest.mark.parametrize("name", LAYOUTS)
def test_reader_finds_directory_and_limit(name: str) -> None:
    want = expected(name)
    root = FIXTURES / name
    reader = CgroupReader(root)
    memory = reader.read()
    assert reader.location.version == want["version"]
    assert reader.location.directory.lstrip("/") == want["cgroup_dir"]
    assert memory.limit_bytes == want["limit_bytes"]
    if want["limit_dir"] is None:
        assert memory.limit_source is None or memory.limit_bytes is None
    else:
        assert memory.limit_source is not None
        assert memory.limit_source.lstrip("/").startswith(want["limit_dir"] + "/")
    assert memory.unreadable == ()


@pytest.mark.parametrize("name", LAYOUTS)
def test_reader_breakdown(name: str) -> None:
    want = expected(name)
    memory = CgroupReader(FIXTURES / name).read()
    assert memory.usage_bytes == want["usage_bytes"]
    assert memory.anon_bytes == want["anon_bytes"]
    assert memory.file_bytes == want["file_bytes"]
    assert memory.active_file_bytes == want["active_file_bytes"]
    assert memory.inactive_file_bytes == want["inactive_file_bytes"]
    assert memory.working_set_bytes == want["working_set_bytes"]
    assert memory.shmem_bytes == want["shmem_bytes"]
    assert memory.slab_bytes == want["slab_bytes"]
    assert memory.events.oom_kill == want["oom_kill"]
    assert memory.pids_current == want["pids_current"]


@pytest.mark.parametrize("name", LAYOUTS)
def test_status_json_through_root(name: str) -> None:
    want = expected(name)
    out = io.StringIO()
    args = build_parser().parse_args(["status", "--json", "--root", str(FIXTURES / name)])
    assert run(args, out) == 0
    document = json.loads(out.getvalue())
    memory = document["memory"]
    assert memory["cgroup_version"] == want["version"]
    assert memory["usage_bytes"] == want["usage_bytes"]
    assert memory["working_set_bytes"] == want["working_set_bytes"]
    assert memory["anon_bytes"] == want["anon_bytes"]
    assert memory["file_bytes"] == want["file_bytes"]
    if want["limit_bytes"] is None:
        # No cgroup limit: the tree's host RAM is the limit, and the status says so.
        assert memory["limit_source"] == "host"
        meminfo = (FIXTURES / name / "proc/meminfo").read_text()
        total_kb = int(meminfo.split("MemTotal:")[1].split()[0])
        assert memory["limit_bytes"] == total_kb * 1024
    else:
        assert memory["limit_bytes"] == want["limit_bytes"]
    assert document["cgroup"]["path"].lstrip("/") == want["cgroup_dir"]


@pytest.mark.parametrize("name", LAYOUTS)
def test_status_table_through_root(name: str) -> None:
    out = io.StringIO()
    assert run(build_parser().parse_args(["status", "--root", str(FIXTURES / name)]), out) == 0
    text = out.getvalue()
    assert f"v{expected(name)['version']}" in text
    assert "working set" in text
    assert "headroom" in text
