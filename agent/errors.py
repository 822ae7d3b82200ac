"""The one error hierarchy of oomguard.

Inner code raises these; only the edges (sampler loop, admin handlers,
middleware, CLI) catch them, log once and carry on.
"""

from __future__ import annotations

__all__ = ["CgroupUnavailable", "ConfigError", "DumpInProgress", "DumpVolumeError", "OomguardError"]


class OomguardError(Exception):
    """Base class of every error oomguard raises on purpose."""


class ConfigError(OomguardError):
    """A configuration value is invalid; the message names the variable and the value."""


class CgroupUnavailable(OomguardError):
    """No memory cgroup could be found for the process (not Linux, no cgroupfs mounted, …)."""


class DumpInProgress(OomguardError):
    """A dump was requested while another one is still being written."""


class DumpVolumeError(OomguardError):
    """The dump volume cannot take a bundle (missing, read-only, full); the message says which."""
