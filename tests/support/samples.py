"""Hand-made samples for unit tests (no machine needed)."""

from __future__ import annotations

from oomguard.cgroup import CgroupMemory, HostMemory, MemoryEvents
from oomguard.procfs import ProcessMemory
from oomguard.sample import PythonMemory, Sample

MiB = 1024 * 1024


def make_sample(
    t: float = 0.0,
    *,
    usage: int = 100 * MiB,
    anon: int = 80 * MiB,
    file: int = 20 * MiB,
    inactive_file: int = 10 * MiB,
    limit: int | None = 256 * MiB,
    rss: int = 90 * MiB,
    threads: int = 4,
    pid: int = 100,
    traced: int | None = None,
    host_total: int = 16 * 1024 * MiB,
    requests_total: int | None = None,
) -> Sample:
    """A v2 sample with the given numbers; everything else plausible."""
    cgroup = CgroupMemory(
        version=2,
        directory="/sys/fs/cgroup",
        limit_bytes=limit,
        limit_source="/sys/fs/cgroup/memory.max" if limit is not None else None,
        usage_bytes=usage,
        anon_bytes=anon,
        file_bytes=file,
        active_file_bytes=file - inactive_file,
        inactive_file_bytes=inactive_file,
        shmem_bytes=0,
        slab_bytes=MiB,
        kernel_stack_bytes=64 * 1024,
        sock_bytes=0,
        events=MemoryEvents(0, 0, 0, 0),
        pressure=None,
        pids_current=threads,
        pids_max=None,
    )
    process = ProcessMemory(pid, rss, rss - 10 * MiB, 10 * MiB, 0, 400 * MiB, threads, 10, "python")
    return Sample(
        time=1_700_000_000.0 + t,
        monotonic=t,
        pid=pid,
        cgroup=cgroup,
        host=HostMemory(host_total, host_total // 2),
        process=process,
        python=PythonMemory(traced, traced, (1, 0, 0)),
        requests_total=requests_total,
    )
