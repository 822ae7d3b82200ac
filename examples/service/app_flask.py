"""Demo service (Flask under gunicorn): ``oomguard run -- gunicorn -w 3 app_flask:app``.

Without the wrapper: ``import oomguard.auto`` first, wrap ``wsgi_app`` as below,
and use ``-c python:oomguard.integrations.gunicorn`` so every worker runs its agent.
"""

from __future__ import annotations

from flask import Flask

import oomguard.auto  # noqa: F401
from oomguard.integrations.wsgi import OomguardWSGIMiddleware

app = Flask(__name__)
app.wsgi_app = OomguardWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]

_sessions: list[bytes] = []


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/login/<user>")
def login(user: str) -> dict[str, object]:
    _sessions.append(b"s" * 256 * 1024)  # never expired
    return {"user": user, "sessions": len(_sessions)}
