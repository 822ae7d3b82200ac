"""Suspects: where the memory that grew was allocated, read from a memray capture.

Works on a finished capture and on one cut short by SIGKILL (post-mortem).
Allocations still alive at the end of the capture are what grew since arming;
they are grouped by the first frame in the application's own code (not the
standard library, site-packages or oomguard), so ``where`` names the line a
developer can change.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AGENT_FRAME", "Suspect", "application_frame", "read_capture_suspects", "suspects_from_records"]

_LIBRARY_PREFIXES = tuple(
    {p for p in (sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")) if p}
)


def _agent_dirs() -> tuple[str, ...]:
    # oomguard and oomguard.integrations: one folder when installed, two in a source checkout.
    dirs = {str(Path(__file__).resolve().parent.parent) + "/"}
    spec = importlib.util.find_spec("oomguard.integrations")
    if spec is not None and spec.origin:
        dirs.add(str(Path(spec.origin).resolve().parent) + "/")
    return tuple(dirs)


_AGENT_DIRS = _agent_dirs()


@dataclass(frozen=True, slots=True)
class Suspect:
    """One allocation site, with the memory it holds."""

    where: str
    """``file:line`` of the allocating application code."""
    size_bytes: int
    count: int
    growth_bytes: int
    """Bytes allocated since the capture started and still alive at its end."""
    function: str = ""
    stack: tuple[str, ...] = ()
    route: str | None = None


def _is_library(filename: str) -> bool:
    return filename.startswith(_LIBRARY_PREFIXES) or filename.startswith("<")


AGENT_FRAME = ("", "<oomguard>", 0)
"""What :func:`application_frame` returns for an allocation made by oomguard itself."""


def application_frame(stack: Sequence[tuple[str, str, int]]) -> tuple[str, str, int] | None:
    """The innermost frame of the application's own code.

    Walking outwards from the allocation: library frames are skipped; reaching
    oomguard's own code first means the agent (or its middleware) allocated it,
    which is reported as :data:`AGENT_FRAME`. A request's allocation passes through
    the middleware further out, so the app's line is found first. Without any
    application frame, the innermost frame stands in.
    """
    for frame in stack:
        if frame[1].startswith(_AGENT_DIRS):
            return AGENT_FRAME
        if not _is_library(frame[1]):
            return frame
    return stack[0] if stack else None


def suspects_from_records(records: Iterable[Any], limit: int = 20) -> list[Suspect]:
    """Group memray ``AllocationRecord``-like objects by application frame, largest first.

    The agent's own allocations (made in oomguard's code) are left out.
    """
    groups: dict[str, list[Any]] = {}
    for record in records:
        stack = record.stack_trace()
        frame = application_frame(stack)
        if frame is AGENT_FRAME:
            continue
        where = f"{frame[1]}:{frame[2]}" if frame is not None else "<unknown>"
        entry = groups.setdefault(where, [0, 0, frame[0] if frame else "", stack])
        entry[0] += record.size
        entry[1] += record.n_allocations
    ranked = sorted(groups.items(), key=lambda kv: kv[1][0], reverse=True)[:limit]
    return [
        Suspect(
            where=where,
            size_bytes=size,
            count=count,
            growth_bytes=size,
            function=function,
            stack=tuple(f"{f[1]}:{f[2]} in {f[0]}" for f in stack[:8]),
        )
        for where, (size, count, function, stack) in ranked
    ]


def read_capture_suspects(path: Path, limit: int = 20) -> list[Suspect]:
    """Suspects from a memray capture file (allocations alive at its end).

    Raises:
        OSError: the file cannot be read as a memray capture.
    """
    import memray

    try:
        reader = memray.FileReader(path, report_progress=False)
    except Exception as exc:  # memray raises plain IOError/OSError/RuntimeError variants
        raise OSError(f"{path}: not a readable memray capture: {exc}") from exc
    try:
        return suspects_from_records(reader.get_leaked_allocation_records(merge_threads=True), limit)
    finally:
        reader.close()
