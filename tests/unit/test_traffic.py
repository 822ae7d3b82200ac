"""Traffic: counting per route, 1-in-N memory sampling, snapshots, route evidence."""

from __future__ import annotations

import pytest

from oomguard import OTHER_ROUTE, RouteStats, Traffic, TrafficSnapshot
from oomguard.heap.suspects import Suspect

MiB = 1024 * 1024


class FakeMemory:
    """Anonymous memory that grows by ``step`` on every read."""

    def __init__(self, step: int = 0) -> None:
        self.value = 100 * MiB
        self.step = step
        self.reads = 0

    def __call__(self) -> int | None:
        self.reads += 1
        self.value += self.step
        return self.value


def serve(traffic: Traffic, route: str, memory: FakeMemory, leak: int = 0, *, endpoint: object = None) -> int | None:
    probe = traffic.begin()
    memory.value += leak
    return traffic.end(probe, route, endpoint=endpoint)


def test_counts_every_request_and_samples_one_in_n() -> None:
    memory = FakeMemory()
    traffic = Traffic(sample_every=4, memory=memory)
    for _ in range(40):
        serve(traffic, "/a", memory)
    for _ in range(20):
        serve(traffic, "/b", memory)
    snapshot = traffic.snapshot()
    assert traffic.total == snapshot.requests == 60
    a, b = snapshot.route("/a"), snapshot.route("/b")
    assert a is not None
    assert b is not None
    assert (a.requests, b.requests) == (40, 20)
    assert a.sampled + b.sampled == 15
    assert memory.reads == 30  # before and after each sampled request, never otherwise


def test_the_leaking_route_stands_out() -> None:
    memory = FakeMemory()
    traffic = Traffic(sample_every=3, memory=memory)
    for i in range(200):
        serve(traffic, "/leak" if i % 2 else "/ok", memory, leak=2 * MiB if i % 2 else 0)
        serve(traffic, "/ok", memory)
    snapshot = traffic.snapshot()
    leaking = snapshot.leaving_memory()
    assert [r.route for r in leaking] == ["/leak"]
    assert leaking[0].retained_bytes == pytest.approx(100 * 2 * MiB, rel=0.1)
    ok = snapshot.route("/ok")
    assert ok is not None
    assert ok.retained_bytes == 0


def test_a_single_warm_up_request_is_not_a_leak() -> None:
    memory = FakeMemory()
    traffic = Traffic(sample_every=1, memory=memory)
    serve(traffic, "/first", memory, leak=50 * MiB)
    assert traffic.snapshot().leaving_memory() == []


def test_errors_are_counted() -> None:
    traffic = Traffic(memory=FakeMemory())
    traffic.end(traffic.begin(), "/boom", error=True)
    traffic.end(traffic.begin(), "/boom")
    stats = traffic.snapshot().route("/boom")
    assert stats is not None
    assert (stats.requests, stats.errors) == (2, 1)


def test_route_cardinality_is_capped() -> None:
    traffic = Traffic(max_routes=3, memory=FakeMemory())
    for i in range(10):
        traffic.end(traffic.begin(), f"/r{i}")
    names = {r.route for r in traffic.snapshot().routes}
    assert len(names) == 4  # three routes, then everything else shares OTHER_ROUTE
    assert OTHER_ROUTE in names
    other = traffic.snapshot().route(OTHER_ROUTE)
    assert other is not None
    assert other.requests == 7


def test_memory_unavailable_still_counts() -> None:
    traffic = Traffic(sample_every=1, memory=lambda: None)
    assert traffic.end(traffic.begin(), "/a") is None
    stats = traffic.snapshot().route("/a")
    assert stats is not None
    assert (stats.requests, stats.sampled) == (1, 0)


def test_sample_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sample_every"):
        Traffic(sample_every=0)


def handler() -> list[bytes]:
    """A route's endpoint."""
    kept = [b"x" * 10]
    return kept


def test_handler_is_named_and_suspects_get_their_route() -> None:
    memory = FakeMemory()
    traffic = Traffic(sample_every=1, memory=memory)
    for _ in range(5):
        serve(traffic, "/leak", memory, leak=MiB, endpoint=handler)
    snapshot = traffic.snapshot()
    stats = snapshot.route("/leak")
    assert stats is not None
    assert stats.handler == f"{__file__}:handler"
    inside = Suspect("lib.py:3", 10, 1, 10, stack=("lib.py:3 in grow", f"{__file__}:99 in handler"))
    outside = Suspect("other.py:1", 5, 1, 5, stack=("other.py:1 in job",))
    line = handler.__code__.co_firstlineno + 2
    no_stack = Suspect(f"{__file__}:{line}", 7, 1, 7)  # tracemalloc names a line, no stack
    annotated = snapshot.annotate([inside, outside, no_stack])
    assert [s.route for s in annotated[:3]] == ["/leak", None, "/leak"]
    assert annotated[3].where == "route /leak"
    assert annotated[3].route == "/leak"
    assert annotated[3].growth_bytes == 5 * MiB


def test_since_subtracts_an_earlier_snapshot() -> None:
    memory = FakeMemory()
    traffic = Traffic(sample_every=1, memory=memory)
    serve(traffic, "/a", memory, leak=MiB)
    before = traffic.snapshot()
    serve(traffic, "/a", memory, leak=3 * MiB)
    serve(traffic, "/b", memory)
    since = traffic.snapshot().since(before)
    a = since.route("/a")
    assert a is not None
    assert (a.requests, a.delta_bytes) == (1, 3 * MiB)
    assert since.requests == 2


def test_json_round_trip() -> None:
    snapshot = TrafficSnapshot(7, 16, (RouteStats("/a", 10, 1, 2, 4 * MiB, "app.py:view", (3, 9)),))
    document = snapshot.to_json()
    assert document["requests"] == 10
    assert TrafficSnapshot.from_json(document) == snapshot
    assert TrafficSnapshot.from_json({"nope": 1}) is None


def test_after_fork_starts_from_zero() -> None:
    traffic = Traffic(memory=FakeMemory())
    traffic.end(traffic.begin(), "/a")
    traffic.after_fork()
    assert traffic.total == 0
    assert traffic.snapshot().routes == ()
