"""Fixtures shared by the integration tests."""

from __future__ import annotations

from tests.support.mounts import tmpfs as tmpfs

__all__ = ["tmpfs"]
