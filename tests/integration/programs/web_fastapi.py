"""A FastAPI app (``OOMGUARD_TEST_MIDDLEWARE=1`` adds the middleware)."""

from __future__ import annotations

import json
import os

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import PlainTextResponse

import oomguard
from oomguard.integrations.starlette import OomguardMiddleware

app = FastAPI()
retained: list[bytes] = []


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"id": item_id, "q": q}


@app.get("/missing/{name}")
async def missing(name: str) -> dict[str, object]:
    raise HTTPException(status_code=404, detail=f"no {name}", headers={"X-Why": "absent"})


@app.get("/invalid/{number}")
async def invalid(number: int) -> dict[str, object]:
    return {"number": number}


@app.get("/boom")
def boom() -> dict[str, object]:
    raise ValueError("boom from fastapi")


@app.get("/leak")
def leak() -> PlainTextResponse:
    retained.append(b"x" * (256 * 1024))
    return PlainTextResponse("leaked")


@app.get("/_stats")
def stats() -> Response:
    return Response(json.dumps(oomguard.get_traffic().snapshot().to_json()), media_type="application/json")


if os.environ.get("OOMGUARD_TEST_MIDDLEWARE") == "1":
    app.add_middleware(OomguardMiddleware)
