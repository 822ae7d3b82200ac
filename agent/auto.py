"""``import oomguard.auto``: start the agent from ``OOMGUARD_*`` variables, never raising.

A bad setting is logged (naming the variable and value) and the agent stays off;
the application always runs on.
"""

from __future__ import annotations

import logging

from . import ConfigError, start

logger = logging.getLogger("oomguard")

try:
    start()
except ConfigError as exc:
    logger.error("oomguard is off: %s", exc)
except Exception:
    logger.exception("oomguard is off: it failed to start")
