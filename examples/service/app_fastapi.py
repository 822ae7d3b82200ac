"""Demo service (FastAPI): one route that leaks, one that does not.

Run it under the wrapper, no code change: ``oomguard run -- uvicorn app_fastapi:app``,
or add the middleware yourself (below) and ``import oomguard.auto`` first.
"""

from __future__ import annotations

from fastapi import FastAPI

import oomguard.auto  # noqa: F401  (the one import line; a no-op under `oomguard run`, which starts it first)
from oomguard.integrations.starlette import OomguardMiddleware

app = FastAPI(title="oomguard demo")
app.add_middleware(OomguardMiddleware)  # requests per route; `oomguard run` adds it when you do not

_reports: dict[int, bytes] = {}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/reports/{report_id}")
def report(report_id: int) -> dict[str, int]:
    # The bug: every rendered report is "cached" forever under a fresh key.
    _reports[len(_reports)] = b"r" * 512 * 1024
    return {"id": report_id, "cached": len(_reports)}


# Mount the admin API next to the app when your oomguard version ships it:
# app.mount("/_oomguard", oomguard.admin_app())
