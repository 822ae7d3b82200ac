"""Pure parsers for the kernel's cgroup and proc memory files (text in, values out)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "V1_UNLIMITED_FLOOR",
    "Pressure",
    "parse_flat_keyed",
    "parse_limit",
    "parse_meminfo",
    "parse_pressure",
    "parse_single_int",
]

# v1 writes PAGE_COUNTER_MAX * PAGE_SIZE for "unlimited": 9223372036854771712 with
# 4 KiB pages, a different number with 16/64 KiB pages. Anything this large is no limit.
V1_UNLIMITED_FLOOR = 1 << 62


@dataclass(frozen=True, slots=True)
class Pressure:
    """PSI for memory (``memory.pressure``): share of time tasks stalled on memory."""

    some_avg10: float
    some_avg60: float
    some_avg300: float
    some_total_us: int
    full_avg10: float | None
    full_avg60: float | None
    full_avg300: float | None
    full_total_us: int | None


def parse_single_int(text: str) -> int | None:
    """A file holding one integer (``memory.current``); None if it does not."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None


def parse_limit(text: str) -> int | None:
    """A limit file: ``max`` (v2) or the v1 sentinel mean no limit (None)."""
    text = text.strip()
    if text == "max":
        return None
    value = parse_single_int(text)
    if value is None or value < 0 or value >= V1_UNLIMITED_FLOOR:
        return None
    return value


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``memory.events``, ``memory.oom_control``)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        value = value.strip()
        if key and value.lstrip("-").isdigit():
            values[key] = int(value)
    return values


def parse_pressure(text: str) -> Pressure | None:
    """``memory.pressure`` / ``/proc/pressure/memory``; None when malformed."""
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        rows[kind] = dict(item.split("=", 1) for item in rest.split() if "=" in item)
    some = rows.get("some")
    if not some:
        return None
    full = rows.get("full")
    try:
        return Pressure(
            some_avg10=float(some["avg10"]),
            some_avg60=float(some["avg60"]),
            some_avg300=float(some["avg300"]),
            some_total_us=int(some["total"]),
            full_avg10=float(full["avg10"]) if full else None,
            full_avg60=float(full["avg60"]) if full else None,
            full_avg300=float(full["avg300"]) if full else None,
            full_total_us=int(full["total"]) if full else None,
        )
    except (KeyError, ValueError):
        return None


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per key (``MemTotal``, ``MemAvailable``, …)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            unit = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key] = int(parts[0]) * unit
    return values
