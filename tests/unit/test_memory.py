"""Interpretation of v1 and v2 memory files (pure)."""

from __future__ import annotations

from oomguard.cgroup.memory import interpret_v1, interpret_v2
from oomguard.cgroup.parse import (
    parse_flat_keyed,
    parse_limit,
    parse_meminfo,
    parse_pressure,
    parse_single_int,
)

V2_STAT = """anon 104857600
file 52428800
kernel 8388608
kernel_stack 589824
pagetables 1048576
sock 4096
shmem 8192
inactive_anon 104857600
active_anon 0
inactive_file 41943040
active_file 10485760
slab_reclaimable 2097152
slab_unreclaimable 1048576
slab 3145728
"""

V1_STAT = """cache 1000
rss 2000
shmem 0
inactive_file 500
active_file 500
hierarchical_memory_limit 268435456
total_cache 52428800
total_rss 104857600
total_shmem 8192
total_inactive_file 41943040
total_active_file 10485760
"""


def test_parse_limit_sentinels() -> None:
    assert parse_limit("max\n") is None
    assert parse_limit("9223372036854771712\n") is None
    assert parse_limit("9223372036854710272\n") is None  # 64 KiB pages
    assert parse_limit("268435456\n") == 268435456
    assert parse_limit("garbage") is None


def test_parse_helpers_tolerate_junk() -> None:
    assert parse_single_int(" 42\n") == 42
    assert parse_single_int("x") is None
    assert parse_flat_keyed("a 1\nb x\n\nc -2\n") == {"a": 1, "c": -2}
    assert parse_meminfo("MemTotal:       1024 kB\nHugePages_Total:       0\n") == {
        "MemTotal": 1024 * 1024,
        "HugePages_Total": 0,
    }


def test_parse_pressure() -> None:
    p = parse_pressure(
        "some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=99\n"
    )
    assert p is not None
    assert (p.some_avg10, p.some_total_us, p.full_avg10, p.full_total_us) == (1.5, 1234, 0.5, 99)
    assert parse_pressure("some avg10=x") is None
    assert parse_pressure("") is None


def test_v2_interpretation_and_lowest_ancestor_limit() -> None:
    memory = interpret_v2(
        "/sys/fs/cgroup/pod/ctr",
        {
            "memory.current": "167772160\n",
            "memory.stat": V2_STAT,
            "memory.events": "low 0\nhigh 3\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
            "memory.pressure": None,
            "pids.current": "12\n",
            "pids.max": "max\n",
        },
        [
            ("/sys/fs/cgroup/pod/ctr/memory.max", "max\n"),
            ("/sys/fs/cgroup/pod/memory.max", "402653184\n"),
            ("/sys/fs/cgroup/memory.max", None),
        ],
    )
    assert memory.version == 2
    assert memory.limit_bytes == 402653184
    assert memory.limit_source == "/sys/fs/cgroup/pod/memory.max"
    assert memory.usage_bytes == 167772160
    assert memory.working_set_bytes == 167772160 - 41943040
    assert (memory.anon_bytes, memory.file_bytes, memory.slab_bytes) == (
        104857600,
        52428800,
        3145728,
    )
    assert (memory.kernel_stack_bytes, memory.sock_bytes, memory.shmem_bytes) == (
        589824,
        4096,
        8192,
    )
    assert (memory.events.high, memory.events.max, memory.events.oom, memory.events.oom_kill) == (
        3,
        7,
        1,
        1,
    )
    assert (memory.pids_current, memory.pids_max) == (12, None)
    assert memory.pressure is None


def test_v2_slab_from_parts_on_older_kernels() -> None:
    stat = "anon 1\nslab_reclaimable 4096\nslab_unreclaimable 8192\n"
    memory = interpret_v2("/", {"memory.stat": stat}, [])
    assert memory.slab_bytes == 12288


def test_v1_maps_total_keys_to_v2_meanings() -> None:
    memory = interpret_v1(
        "/sys/fs/cgroup/memory",
        {
            "memory.usage_in_bytes": "160000000\n",
            "memory.stat": V1_STAT,
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            "memory.failcnt": "17\n",
            "memory.kmem.tcp.usage_in_bytes": "0\n",
        },
        [("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")],
    )
    assert memory.limit_bytes == 268435456
    assert memory.limit_source == "/sys/fs/cgroup/memory/memory.stat:hierarchical_memory_limit"
    assert (memory.anon_bytes, memory.file_bytes, memory.shmem_bytes) == (104857600, 52428800, 8192)
    assert memory.inactive_file_bytes == 41943040
    assert memory.working_set_bytes == 160000000 - 41943040
    assert (memory.events.oom_kill, memory.events.max) == (2, 17)
    assert memory.slab_bytes is None


def test_v1_own_limit_wins_when_lower_and_unlimited_is_none() -> None:
    files = {
        "memory.usage_in_bytes": "1\n",
        "memory.stat": "total_rss 1\nhierarchical_memory_limit 9223372036854771712\n",
    }
    limited = interpret_v1("/m", files, [("/m/memory.limit_in_bytes", "134217728\n")])
    assert (limited.limit_bytes, limited.limit_source) == (134217728, "/m/memory.limit_in_bytes")
    unlimited = interpret_v1("/m", files, [("/m/memory.limit_in_bytes", "9223372036854771712\n")])
    assert unlimited.limit_bytes is None


def test_missing_files_give_a_partial_reading() -> None:
    memory = interpret_v1("/m", {"memory.usage_in_bytes": None, "memory.stat": None}, [], ("memory.stat",))
    assert memory.usage_bytes is None
    assert memory.working_set_bytes is None
    assert memory.anon_bytes is None
    assert memory.unreadable == ("memory.stat",)


def test_working_set_never_negative() -> None:
    memory = interpret_v2("/", {"memory.current": "100\n", "memory.stat": "inactive_file 4096\n"}, [])
    assert memory.working_set_bytes == 0
