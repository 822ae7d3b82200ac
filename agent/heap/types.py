"""Object-type counts (objgraph) and their growth between two moments.

objgraph only sees gc-tracked objects: a dict holding only ints or strings is
untracked and invisible here (tracemalloc and memray still see its memory).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from ..sample import Sample

__all__ = ["TypeStats", "estimate_type_count", "type_growth", "type_stats"]

#: ``gc.get_objects()`` holds one pointer per tracked object; objgraph's table is small.
BYTES_PER_OBJECT = 8


@dataclass(frozen=True, slots=True)
class TypeStats:
    """gc-tracked objects per type name."""

    total: int
    by_type: Mapping[str, int]


def estimate_type_count(sample: Sample, last_total: int | None = None) -> int:
    """Peak extra bytes of :func:`type_stats` now.

    gc-tracked objects are a subset of the interpreter's allocated blocks
    (``sys.getallocatedblocks()``, cheap), so that count bounds the pointer list
    ``gc.get_objects()`` builds; twice the last measured count also bounds it.
    """
    blocks = sys.getallocatedblocks()
    objects = min(blocks, last_total * 2) if last_total is not None else blocks
    return objects * BYTES_PER_OBJECT + 512 * 1024


def type_stats(limit: int = 200) -> TypeStats:
    """Count gc-tracked objects by type (``objgraph.typestats``; holds the GIL ~0.2 s per million objects)."""
    import objgraph

    counts: dict[str, int] = objgraph.typestats(shortnames=True)
    total = sum(counts.values())
    top = dict(sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:limit])
    return TypeStats(total, top)


def type_growth(before: TypeStats, after: TypeStats, limit: int = 30) -> list[dict[str, object]]:
    """Types whose count grew, most first: ``[{"type", "count", "growth"}]``."""
    growth = [
        {"type": name, "count": count, "growth": count - before.by_type.get(name, 0)}
        for name, count in after.by_type.items()
        if count > before.by_type.get(name, 0)
    ]
    growth.sort(key=lambda g: int(str(g["growth"])), reverse=True)
    return growth[:limit]
