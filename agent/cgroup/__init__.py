"""The process's memory cgroup: discovery, pure parsers and the reader (SPEC §4)."""

from __future__ import annotations

from .discovery import Location, locate_memory_cgroup, parse_mountinfo, parse_proc_cgroup
from .memory import CgroupMemory, MemoryEvents
from .parse import Pressure
from .reader import CgroupReader, HostMemory, read_host_memory

__all__ = [
    "CgroupMemory",
    "CgroupReader",
    "HostMemory",
    "Location",
    "MemoryEvents",
    "Pressure",
    "locate_memory_cgroup",
    "parse_mountinfo",
    "parse_proc_cgroup",
    "read_host_memory",
]
