"""``oomguard run``'s bootstrap: Python imports this at startup because the wrapper put its folder on PYTHONPATH.

It starts the agent (and wraps the server's app) in the processes that serve,
then hands over to the user's own ``sitecustomize``, if there is one.
"""

from __future__ import annotations

try:
    from oomguard.bootstrap import bootstrap
except Exception:  # oomguard is not importable by this interpreter: stay out of the way
    pass
else:
    bootstrap()
