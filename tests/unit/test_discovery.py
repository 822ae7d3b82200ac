"""Discovery over synthetic layouts; the captured trees are in test_fixtures.py."""

from __future__ import annotations

import pytest

from oomguard.cgroup.discovery import (
    locate_memory_cgroup,
    parse_mountinfo,
    parse_proc_cgroup,
)

V1_MOUNT = "35 31 0:32 {root} /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
V2_MOUNT = "30 23 0:26 {root} {point} rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def exists_in(*paths: str) -> set[str]:
    return set(paths)


def test_parse_proc_cgroup_v1_and_v2_lines() -> None:
    lines = parse_proc_cgroup("4:memory:/docker/abc\n2:cpu,cpuacct:/x\n0::/user.slice\ngarbage\n")
    assert [(ln.hierarchy_id, ln.controllers, ln.path) for ln in lines] == [
        (4, ("memory",), "/docker/abc"),
        (2, ("cpu", "cpuacct"), "/x"),
        (0, (), "/user.slice"),
    ]


def test_parse_mountinfo_unescapes_and_keeps_only_cgroups() -> None:
    text = (
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "35 31 0:32 /with\\040space /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory\n"
        "36 31 0:33 / /sys/fs/cgroup rw shared:1 master:2 - cgroup2 cgroup2 rw\n"
    )
    mounts = parse_mountinfo(text)
    assert [(m.root, m.mount_point, m.fstype) for m in mounts] == [
        ("/with space", "/sys/fs/cgroup/mem ory", "cgroup"),
        ("/", "/sys/fs/cgroup", "cgroup2"),
    ]
    assert mounts[0].super_options == ("rw", "memory")


def test_v1_root_mount_joins_the_path() -> None:
    loc = locate_memory_cgroup(
        "4:memory:/a/b\n",
        V1_MOUNT.format(root="/"),
        exists_in("/sys/fs/cgroup/memory/a/b").__contains__,
    )
    assert loc is not None
    assert (loc.version, loc.directory, loc.fallback) == (1, "/sys/fs/cgroup/memory/a/b", False)


def test_v1_mount_root_equal_to_path_is_the_mount_point() -> None:
    loc = locate_memory_cgroup(
        "4:memory:/docker/abc\n",
        V1_MOUNT.format(root="/docker/abc"),
        exists_in("/sys/fs/cgroup/memory").__contains__,
    )
    assert loc is not None
    assert (loc.directory, loc.fallback) == ("/sys/fs/cgroup/memory", False)


def test_v1_path_below_mount_root_is_translated() -> None:
    loc = locate_memory_cgroup(
        "4:memory:/docker/abc/child\n",
        V1_MOUNT.format(root="/docker/abc"),
        exists_in("/sys/fs/cgroup/memory/child").__contains__,
    )
    assert loc is not None
    assert loc.directory == "/sys/fs/cgroup/memory/child"


def test_v1_invisible_host_path_falls_back_to_the_mount_root() -> None:
    loc = locate_memory_cgroup(
        "4:memory:/kubepods/burstable/pod1/abc\n",
        V1_MOUNT.format(root="/"),
        exists_in("/sys/fs/cgroup/memory").__contains__,
    )
    assert loc is not None
    assert (loc.directory, loc.fallback) == ("/sys/fs/cgroup/memory", True)


def test_invisible_prefix_keeps_the_visible_tail() -> None:
    # Nested container: the outer part of the path is not mounted, the inner part is.
    loc = locate_memory_cgroup(
        "4:memory:/outer/inner/app\n",
        V1_MOUNT.format(root="/"),
        exists_in("/sys/fs/cgroup/memory/inner/app").__contains__,
    )
    assert loc is not None
    assert (loc.directory, loc.fallback) == ("/sys/fs/cgroup/memory/inner/app", True)


def test_v2_namespace_root() -> None:
    loc = locate_memory_cgroup(
        "0::/\n",
        V2_MOUNT.format(root="/", point="/sys/fs/cgroup"),
        exists_in("/sys/fs/cgroup").__contains__,
    )
    assert loc is not None
    assert (loc.version, loc.directory) == (2, "/sys/fs/cgroup")


def test_v2_path_outside_the_namespace_uses_the_mount() -> None:
    loc = locate_memory_cgroup(
        "0::/../../sibling\n",
        V2_MOUNT.format(root="/", point="/sys/fs/cgroup"),
        exists_in("/sys/fs/cgroup", "/sys/fs/cgroup/sibling").__contains__,
    )
    assert loc is not None
    assert loc.directory == "/sys/fs/cgroup"
    assert loc.fallback


def test_hybrid_prefers_the_v1_memory_controller() -> None:
    mountinfo = V1_MOUNT.format(root="/") + V2_MOUNT.format(root="/", point="/sys/fs/cgroup/unified")
    loc = locate_memory_cgroup(
        "4:memory:/system.slice/app.service\n0::/system.slice/app.service\n",
        mountinfo,
        exists_in(
            "/sys/fs/cgroup/memory/system.slice/app.service",
            "/sys/fs/cgroup/unified/system.slice/app.service",
        ).__contains__,
    )
    assert loc is not None
    assert (loc.version, loc.directory) == (1, "/sys/fs/cgroup/memory/system.slice/app.service")


def test_hybrid_without_v1_memory_uses_unified_only_when_it_has_memory_files() -> None:
    mountinfo = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n" + V2_MOUNT.format(
        root="/", point="/sys/fs/cgroup/unified"
    )
    cgroup = "1:cpu:/\n0::/app\n"
    assert locate_memory_cgroup(cgroup, mountinfo, exists_in("/sys/fs/cgroup/unified/app").__contains__) is None
    loc = locate_memory_cgroup(
        cgroup,
        mountinfo,
        exists_in("/sys/fs/cgroup/unified/app", "/sys/fs/cgroup/unified/app/memory.current").__contains__,
    )
    assert loc is not None
    assert (loc.version, loc.directory) == (2, "/sys/fs/cgroup/unified/app")


@pytest.mark.parametrize(
    ("cgroup", "mountinfo"),
    [
        ("", ""),
        ("4:memory:/x\n", ""),
        ("0::/\n", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"),
    ],
)
def test_no_memory_cgroup_gives_none(cgroup: str, mountinfo: str) -> None:
    assert locate_memory_cgroup(cgroup, mountinfo, lambda _: True) is None
