"""The status document and table show traffic per route and recorded worker OOM kills."""

from __future__ import annotations

from oomguard import RouteStats, TrafficSnapshot
from oomguard.cli.status import render_table
from oomguard.status import status_document
from tests.support.samples import make_sample


def test_status_document_has_traffic_and_kills() -> None:
    sample = make_sample()
    traffic = TrafficSnapshot(100, 16, (RouteStats("/leak", 40, 0, 3, 6 * 1024 * 1024, "app.py:leak"),))
    kill = {"cgroup": "/sys/fs/cgroup", "oom_kill": 2, "pids": [41], "evidence": ["20260101T000000Z-h-41-threshold"]}
    document = status_document(sample, [], traffic=traffic, oom_kills=[kill])
    assert document["traffic"] == traffic.to_json()
    assert document["oom_kills"] == [kill]
    table = render_table(sample, document)
    assert "oom kill" in table
    assert "pid 41 (oom_kill 2); evidence: 20260101T000000Z-h-41-threshold" in table


def test_without_integrations_or_kills() -> None:
    document = status_document(make_sample(), [])
    assert document["traffic"] is None
    assert document["oom_kills"] == []
