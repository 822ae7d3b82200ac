"""Traffic: requests per route and the memory sampled requests leave behind (SPEC §4).

The integrations (ASGI, WSGI, Django) call :meth:`Traffic.begin` before a
request and :meth:`Traffic.end` after it, with the route *template*
(``/items/{item_id}``, never the raw path: cardinality stays bounded). The
hot path costs a counter, a modulo and a dict lookup; one request in
``sample_every`` also reads the process's anonymous memory (one ``pread`` of
``/proc/self/statm`` on a file kept open, ~1 µs) before and after, so each
route accumulates the memory its requests left behind. Concurrent requests of
an async server overlap, so one delta is noisy; summed over many sampled
requests the leaking route stands out and the others average out to zero.

The sums are estimates of *retained* memory: a route whose sampled requests
leave +2 MiB each, one request in 16 sampled, retained about
``sum(deltas) × requests / sampled``.
"""

from __future__ import annotations

import inspect
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .heap.suspects import Suspect

__all__ = [
    "OTHER_ROUTE",
    "UNMATCHED_ROUTE",
    "Probe",
    "RouteStats",
    "Traffic",
    "TrafficSnapshot",
    "annotate_span",
    "current_snapshot",
    "get_traffic",
    "requests_total",
]

#: Requests no route matched (404s, mounted apps without routing).
UNMATCHED_ROUTE = "<unmatched>"
#: Routes past the cardinality cap share this one.
OTHER_ROUTE = "<other>"

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Statm:
    """``/proc/self/statm`` kept open: anonymous bytes (resident - shared) in one pread.

    The fd names the process that opened it, so a forked child reopens its own.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._pid = 0
        self._broken = False

    def __call__(self) -> int | None:
        if self._broken:
            return None
        pid = os.getpid()
        if self._fd is None or pid != self._pid:
            try:
                self._fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._broken = True  # no procfs (macOS): memory deltas are off, counting goes on
                return None
            self._pid = pid
        try:
            fields = os.pread(self._fd, 128, 0).split()
            return (int(fields[1]) - int(fields[2])) * _PAGE
        except (OSError, ValueError, IndexError):
            return None


def _handler_of(endpoint: object) -> tuple[str, tuple[int, int]] | None:
    """``file:function`` of the code that serves a route (unwrapping decorators), and its lines."""
    try:
        target: Any = inspect.unwrap(endpoint)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        target = endpoint
    code = getattr(target, "__code__", None)
    if code is None:
        call = getattr(target, "__call__", None)  # noqa: B004  (a callable object: its method names it)
        code = getattr(call, "__code__", None)
    if code is None:
        return None
    lines = [line for _, _, line in code.co_lines() if line is not None]
    first = code.co_firstlineno
    return f"{code.co_filename}:{code.co_name}", (first, max(lines, default=first))


def _lines(value: object) -> tuple[int, int] | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    return None


class _Route:
    """Mutable per-route counters, touched only on the hot path (the GIL keeps += whole)."""

    __slots__ = ("delta_bytes", "errors", "handler", "lines", "requests", "sampled")

    def __init__(self, handler: tuple[str, tuple[int, int]] | None) -> None:
        self.requests = 0
        self.errors = 0
        self.sampled = 0
        self.delta_bytes = 0
        self.handler = handler[0] if handler is not None else None
        self.lines = handler[1] if handler is not None else None


@dataclass(frozen=True, slots=True)
class RouteStats:
    """One route's traffic and the memory its sampled requests left behind."""

    route: str
    requests: int
    errors: int
    """Requests whose handler raised (the exception went on to the server untouched)."""
    sampled: int
    """Requests whose memory was measured."""
    delta_bytes: int
    """Sum of the sampled requests' anonymous-memory deltas (after - before)."""
    handler: str | None = None
    """``file:function`` of the endpoint, when the framework names it."""
    handler_lines: tuple[int, int] | None = None
    """First and last line of the endpoint's code."""

    def serves(self, where: str) -> bool:
        """Whether ``file:line`` lies inside this route's handler."""
        if self.handler is None or self.handler_lines is None:
            return False
        filename, _, line = where.rpartition(":")
        first, last = self.handler_lines
        return line.isdigit() and self.handler.rpartition(":")[0] == filename and first <= int(line) <= last

    @property
    def retained_bytes(self) -> int:
        """Estimated memory all of this route's requests left behind (sampled sum scaled up)."""
        if not self.sampled:
            return 0
        return int(self.delta_bytes * self.requests / self.sampled)

    @property
    def mean_delta_bytes(self) -> float | None:
        """Average memory left behind by one request; None before a sample."""
        return self.delta_bytes / self.sampled if self.sampled else None

    def minus(self, before: RouteStats | None) -> RouteStats:
        """The traffic since ``before`` (an earlier snapshot of the same route)."""
        if before is None:
            return self
        return RouteStats(
            self.route,
            self.requests - before.requests,
            self.errors - before.errors,
            self.sampled - before.sampled,
            self.delta_bytes - before.delta_bytes,
            self.handler,
            self.handler_lines,
        )

    def to_json(self) -> dict[str, object]:
        """Plain JSON-ready fields (the status document, manifests)."""
        return {
            "route": self.route,
            "requests": self.requests,
            "errors": self.errors,
            "sampled": self.sampled,
            "delta_bytes": self.delta_bytes,
            "retained_bytes": self.retained_bytes,
            "handler": self.handler,
            "handler_lines": list(self.handler_lines) if self.handler_lines else None,
        }


@dataclass(frozen=True, slots=True)
class TrafficSnapshot:
    """All routes at one moment."""

    pid: int
    sample_every: int
    routes: tuple[RouteStats, ...]

    @property
    def requests(self) -> int:
        """Requests counted over all routes."""
        return sum(r.requests for r in self.routes)

    def route(self, name: str) -> RouteStats | None:
        """One route's stats, if it was seen."""
        return next((r for r in self.routes if r.route == name), None)

    def since(self, before: TrafficSnapshot | None) -> TrafficSnapshot:
        """The traffic between ``before`` and this snapshot (routes without requests dropped)."""
        if before is None or before.pid != self.pid:
            return self
        earlier = {r.route: r for r in before.routes}
        routes = tuple(d for r in self.routes if (d := r.minus(earlier.get(r.route))).requests)
        return TrafficSnapshot(self.pid, self.sample_every, routes)

    def leaving_memory(self, minimum_bytes: int = 1024 * 1024, minimum_sampled: int = 3) -> list[RouteStats]:
        """Routes whose requests left memory behind, most first.

        Args:
            minimum_bytes: the estimate a route needs in all.
            minimum_sampled: measured requests it needs (one warm-up request is not a leak).
        """
        found = [r for r in self.routes if r.sampled >= minimum_sampled and r.retained_bytes >= minimum_bytes]
        return sorted(found, key=lambda r: r.retained_bytes, reverse=True)

    def route_for(self, suspect: Suspect) -> str | None:
        """The route whose handler allocated ``suspect``: its line is in the handler, or its stack runs through it."""
        for stats in self.routes:
            if stats.serves(suspect.where):
                return stats.route
        return self.route_for_stack(suspect.stack)

    def route_for_stack(self, stack: tuple[str, ...]) -> str | None:
        """The route whose handler appears in a stack of ``"file:line in function"`` frames."""
        handlers = {r.handler: r.route for r in self.routes if r.handler}
        if not handlers:
            return None
        for frame in stack:
            location, _, function = frame.rpartition(" in ")
            filename = location.rsplit(":", 1)[0]
            route = handlers.get(f"{filename}:{function}")
            if route is not None:
                return route
        return None

    @classmethod
    def from_json(cls, document: object) -> TrafficSnapshot | None:
        """Read back :meth:`to_json` (e.g. ``traffic.json`` of a bundle); None when it is not one."""
        if not isinstance(document, dict) or not isinstance(document.get("routes"), list):
            return None
        routes = []
        for row in document["routes"]:
            try:
                routes.append(
                    RouteStats(
                        str(row["route"]),
                        int(row["requests"]),
                        int(row["errors"]),
                        int(row["sampled"]),
                        int(row["delta_bytes"]),
                        row.get("handler") if isinstance(row.get("handler"), str) else None,
                        _lines(row.get("handler_lines")),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
        pid, every = document.get("pid"), document.get("sample_every")
        return cls(pid if isinstance(pid, int) else 0, every if isinstance(every, int) else 1, tuple(routes))

    def annotate(self, suspects: Sequence[Suspect], limit: int = 3) -> list[Suspect]:
        """Name each suspect's route (its stack runs through the route's handler), then add route suspects.

        Route suspects (``where`` = ``route <template>``) come after the allocation
        sites, largest estimated retained memory first, at most ``limit``.
        """
        named = [s if s.route else replace(s, route=self.route_for(s)) for s in suspects]
        for stats in self.leaving_memory()[:limit]:
            retained = stats.retained_bytes
            named.append(Suspect(f"route {stats.route}", retained, stats.requests, retained, route=stats.route))
        return named

    def to_json(self) -> dict[str, object]:
        """Plain JSON-ready fields, busiest route first."""
        ranked = sorted(self.routes, key=lambda r: r.requests, reverse=True)
        return {
            "pid": self.pid,
            "requests": self.requests,
            "sample_every": self.sample_every,
            "routes": [r.to_json() for r in ranked],
        }


#: What :meth:`Traffic.begin` returns for a sampled request: the memory before it.
Probe = int


class Traffic:
    """Counts requests per route and samples the memory they leave behind.

    Thread-safe for the counting it does (the GIL keeps each ``+=`` whole);
    cheap enough to sit in front of every request (see ``bench_middleware.py``).

    Args:
        sample_every: measure one request in this many (a power of two is not required).
        max_routes: distinct routes kept; later ones count as :data:`OTHER_ROUTE`.
        memory: reads this process's anonymous memory in bytes (injectable for tests).
    """

    def __init__(
        self,
        *,
        sample_every: int = 16,
        max_routes: int = 256,
        memory: Callable[[], int | None] | None = None,
    ) -> None:
        if sample_every < 1:
            raise ValueError(f"sample_every must be >= 1, got {sample_every}")
        self.sample_every = sample_every
        self.max_routes = max_routes
        self._memory = memory if memory is not None else _Statm()
        self._ticks = itertools.count(1)
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self.pid = os.getpid()

    # -- the hot path ------------------------------------------------------------

    def begin(self) -> Probe | None:
        """Call before a request; returns a probe for the sampled ones (else None)."""
        if next(self._ticks) % self.sample_every:
            return None
        return self._memory()

    def end(self, probe: Probe | None, route: str, *, endpoint: object = None, error: bool = False) -> int | None:
        """Call after the request with the route template; returns the memory delta when sampled.

        Args:
            probe: what :meth:`begin` returned.
            route: the route template (or :data:`UNMATCHED_ROUTE`).
            endpoint: the function or class that served it, named once per route.
            error: the handler raised.
        """
        stats = self._routes.get(route)
        if stats is None:
            stats = self._new_route(route, endpoint)
        stats.requests += 1
        if error:
            stats.errors += 1
        if probe is None:
            return None
        after = self._memory()
        if after is None:
            return None
        delta = after - probe
        stats.sampled += 1
        stats.delta_bytes += delta
        return delta

    def _new_route(self, route: str, endpoint: object) -> _Route:
        with self._lock:
            stats = self._routes.get(route)
            if stats is not None:
                return stats
            if len(self._routes) >= self.max_routes:
                route = OTHER_ROUTE
                stats = self._routes.get(route)
                if stats is not None:
                    return stats
            stats = _Route(_handler_of(endpoint) if endpoint is not None else None)
            # Copy-on-write: readers iterate a dict that is never resized under them.
            routes = dict(self._routes)
            routes[route] = stats
            self._routes = routes
            return stats

    # -- readers -------------------------------------------------------------------

    def knows(self, route: str) -> bool:
        """Whether ``route`` has been counted already (its endpoint is then not needed)."""
        return route in self._routes

    @property
    def total(self) -> int:
        """Requests counted so far, over all routes."""
        return sum(r.requests for r in self._routes.values())

    def snapshot(self) -> TrafficSnapshot:
        """Every route's counters now."""
        routes = tuple(
            RouteStats(name, r.requests, r.errors, r.sampled, r.delta_bytes, r.handler, r.lines)
            for name, r in self._routes.items()
        )
        return TrafficSnapshot(self.pid, self.sample_every, routes)

    def after_fork(self) -> None:
        """In a forked child (a pre-fork worker): the parent's requests are not ours."""
        self._ticks = itertools.count(1)
        self._routes = {}
        self._lock = threading.Lock()
        self.pid = os.getpid()


_global_lock = threading.Lock()
_global: Traffic | None = None


def _after_fork_in_child() -> None:
    if _global is not None:
        _global.after_fork()


def get_traffic() -> Traffic:
    """The process-wide :class:`Traffic` the integrations feed (created on first use)."""
    global _global
    traffic = _global
    if traffic is not None:
        return traffic
    with _global_lock:
        if _global is None:
            _global = Traffic()
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_after_fork_in_child)
        return _global


def current_snapshot() -> TrafficSnapshot | None:
    """This process's routes now; None when no integration has counted a request."""
    traffic = _global
    return traffic.snapshot() if traffic is not None else None


def requests_total() -> int | None:
    """Requests counted by the integrations in this process; None when none is installed."""
    traffic = _global
    return traffic.total if traffic is not None else None


def annotate_span(route: str, delta_bytes: int) -> None:
    """Put a sampled request's memory on the active OpenTelemetry span (a no-op without an SDK)."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("oomguard.request.memory_delta", delta_bytes)
        span.set_attribute("oomguard.request.route", route)
