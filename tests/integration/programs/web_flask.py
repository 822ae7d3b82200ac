"""A Flask app (``OOMGUARD_TEST_MIDDLEWARE=1`` wraps ``wsgi_app``); ``/leak`` keeps 2 MiB per request."""

from __future__ import annotations

import json
import os

from flask import Flask, Response, abort, request

import oomguard
from oomguard.integrations.wsgi import OomguardWSGIMiddleware

app = Flask(__name__)
sessions: list[bytes] = []


@app.get("/")
def hello() -> str:
    return "hello"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> Response:
    response = Response(json.dumps({"id": item_id, "q": request.args.get("q")}), mimetype="application/json")
    response.set_cookie("seen", "1", httponly=True)
    response.headers["X-Custom"] = "a, b"
    return response


@app.post("/created")
def created() -> Response:
    return Response(request.get_data()[::-1], status=201, mimetype="application/octet-stream")


@app.get("/stream")
def stream() -> Response:
    return Response((f"chunk {i}\n" for i in range(5)), mimetype="text/plain")


@app.get("/teapot")
def teapot() -> str:
    abort(418)


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("boom from flask")


@app.get("/leak")
def leak() -> str:
    size = int(request.args.get("mib", "2")) * 1024 * 1024
    sessions.append(b"x" * size)  # LEAK-LINE: every request keeps its buffer (written: resident)
    return str(os.getpid())


@app.get("/pid")
def pid() -> str:
    return str(os.getpid())


@app.get("/_stats")
def stats() -> Response:
    return Response(json.dumps(oomguard.get_traffic().snapshot().to_json()), mimetype="application/json")


if os.environ.get("OOMGUARD_TEST_MIDDLEWARE") == "1":
    app.wsgi_app = OomguardWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
