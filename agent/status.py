"""The ``/status`` document (SPEC §8) built from plain values; JSON is made at the edges."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from .diagnosis import Verdict, verdict_document
from .procfs import ProcessMemory
from .sample import Sample
from .traffic import TrafficSnapshot

__all__ = ["memory_fields", "process_fields", "status_document"]


def memory_fields(sample: Sample) -> dict[str, object]:
    """The ``memory`` object of the status document and manifests (SPEC §6 names)."""
    cg = sample.cgroup
    python = sample.python
    return {
        "cgroup_version": cg.version if cg is not None else None,
        "limit_bytes": sample.limit_bytes,
        "limit_source": "host" if sample.limit_from_host else (cg.limit_source if cg else None),
        "usage_bytes": sample.usage_bytes,
        "working_set_bytes": sample.working_set_bytes,
        "headroom_bytes": sample.headroom_bytes,
        "anon_bytes": cg.anon_bytes if cg else None,
        "file_bytes": cg.file_bytes if cg else None,
        "active_file_bytes": cg.active_file_bytes if cg else None,
        "inactive_file_bytes": cg.inactive_file_bytes if cg else None,
        "shmem_bytes": cg.shmem_bytes if cg else None,
        "slab_bytes": cg.slab_bytes if cg else None,
        "kernel_stack_bytes": cg.kernel_stack_bytes if cg else None,
        "sock_bytes": cg.sock_bytes if cg else None,
        "rss_bytes": sample.process.rss_bytes,
        "python_traced_bytes": python.traced_bytes if python else None,
    }


def process_fields(process: ProcessMemory) -> dict[str, object]:
    """One row of the ``processes`` table."""
    return asdict(process)


def status_document(
    sample: Sample,
    processes: list[ProcessMemory],
    *,
    cgroup_unavailable: str | None = None,
    verdict: Verdict | None = None,
    traffic: TrafficSnapshot | None = None,
    oom_kills: Sequence[Mapping[str, object]] = (),
) -> dict[str, object]:
    """The status JSON: memory breakdown, cgroup details, the processes of the cgroup and the verdict.

    ``traffic`` (requests per route, from the integrations) and ``oom_kills``
    (worker OOM kills recorded on the volume) are included when given.
    """
    cg = sample.cgroup
    cgroup: dict[str, object] | None = None
    if cg is not None:
        cgroup = {
            "version": cg.version,
            "path": cg.directory,
            "events": asdict(cg.events),
            "pressure": asdict(cg.pressure) if cg.pressure else None,
            "pids_current": cg.pids_current,
            "pids_max": cg.pids_max,
            "unreadable": list(cg.unreadable),
        }
    return {
        "pid": sample.pid,
        "hostname": socket.gethostname(),
        "time": sample.time,
        "memory": memory_fields(sample),
        "host_fallback": cg is None,
        "cgroup_unavailable": cgroup_unavailable,
        "cgroup": cgroup,
        "process": process_fields(sample.process),
        "processes": [process_fields(p) for p in processes],
        "python": asdict(sample.python) if sample.python else None,
        "verdict": verdict_document(verdict) if verdict is not None else None,
        "traffic": traffic.to_json() if traffic is not None else None,
        "oom_kills": [dict(k) for k in oom_kills],
    }
