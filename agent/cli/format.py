"""Small text formatting helpers for the CLI."""

from __future__ import annotations

__all__ = ["human_bytes"]


def human_bytes(value: int | None) -> str:
    """``268435456`` → ``256.0 MiB``; None → ``-``."""
    if value is None:
        return "-"
    size = float(value)
    sign = "-" if size < 0 else ""
    size = abs(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{sign}{size:.0f} {unit}" if unit == "B" else f"{sign}{size:.1f} {unit}"
        size /= 1024
    return f"{sign}{size:.1f} TiB"
