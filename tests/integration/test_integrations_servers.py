"""Real servers on 127.0.0.1: requests counted per route; responses byte-identical with and without the middleware.

uvicorn + Starlette, uvicorn + FastAPI, gunicorn (sync workers) + Flask,
gunicorn + Django. Each app runs twice, with and without oomguard's
middleware, and answers the same raw HTTP requests; only the ``Date`` header
may differ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import BIN, Server, http, normalise, serve, server_env


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + body


def stats(server: Server, path: str = "/_stats") -> dict[str, dict[str, object]]:
    raw = http(server.port, get(path))
    document = json.loads(raw.partition(b"\r\n\r\n")[2])
    return {row["route"]: row for row in document["routes"]}


@dataclass
class Compared:
    without: list[bytes]
    with_middleware: list[bytes]
    routes: dict[str, dict[str, object]]
    log: str


def compare(argv: Sequence[str], tmp_path: Path, requests: Sequence[bytes], stats_path: str = "/_stats") -> Compared:
    """The same requests to the app without, then with the middleware; the routes it counted."""
    answers: dict[str, list[bytes]] = {}
    for flag in ("0", "1"):
        env = server_env(OOMGUARD_TEST_MIDDLEWARE=flag, OOMGUARD_DUMP_DIR=str(tmp_path / "dumps"))
        with serve(argv, tmp_path / f"server-{flag}.log", env=env) as server:
            answers[flag] = [normalise(http(server.port, r)) for r in requests]
            if flag == "1":
                routes = stats(server, stats_path)
                log = server.output()
    return Compared(answers["0"], answers["1"], routes, log)


STARLETTE_REQUESTS = [
    get("/"),
    get("/items/7?q=x"),
    get("/items/8"),
    get("/items/9"),
    post("/created", b"abc\x00\xff"),
    get("/stream"),
    get("/boom"),
    get("/nowhere"),
    get("/api/users/5"),
    get("/api/users/nope"),
    b"DELETE / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
]


def test_uvicorn_starlette(tmp_path: Path) -> None:
    argv = [str(BIN / "uvicorn"), "web_starlette:app", "--host", "127.0.0.1", "--port", "0"]
    result = compare(argv, tmp_path, STARLETTE_REQUESTS)
    assert result.with_middleware == result.without
    assert result.without[6].startswith(b"HTTP/1.1 500 ")
    assert b"transfer-encoding: chunked" in result.without[5].lower()
    routes = result.routes
    assert routes["/items/{item_id}"]["requests"] == 3
    assert routes["/"]["requests"] == 2
    assert routes["/boom"]["errors"] == 1
    assert routes["/stream"]["requests"] == 1
    assert routes["/api/users/{user_id:int}"]["requests"] == 1
    assert routes["<unmatched>"]["requests"] == 2
    assert str(routes["/items/{item_id}"]["handler"]).endswith("web_starlette.py:item")
    # The app's own exception reached the server, as without the middleware.
    assert result.log.count("RuntimeError: boom from the app") == 1


def test_uvicorn_fastapi(tmp_path: Path) -> None:
    argv = [str(BIN / "uvicorn"), "web_fastapi:app", "--host", "127.0.0.1", "--port", "0"]
    requests = [
        get("/items/3?q=y"),
        get("/items/4"),
        get("/missing/thing"),
        get("/invalid/notanumber"),
        get("/boom"),
        get("/openapi.json"),
        get("/nowhere"),
    ]
    result = compare(argv, tmp_path, requests)
    assert result.with_middleware == result.without
    assert result.without[3].startswith(b"HTTP/1.1 422 ")
    assert result.log.count("ValueError: boom from fastapi") == 1
    routes = result.routes
    assert routes["/items/{item_id}"]["requests"] == 2
    assert routes["/missing/{name}"]["requests"] == 1
    assert routes["/invalid/{number}"]["requests"] == 1
    assert routes["/boom"]["errors"] == 1
    assert routes["/openapi.json"]["requests"] == 1
    assert routes["<unmatched>"]["requests"] == 1


FLASK_REQUESTS = [
    get("/"),
    get("/items/1?q=z"),
    get("/items/2"),
    post("/created", b"hello\x00"),
    get("/stream"),
    get("/teapot"),
    get("/boom"),
    get("/nowhere"),
]


def test_gunicorn_flask_sync_workers(tmp_path: Path) -> None:
    argv = [str(BIN / "gunicorn"), "--no-control-socket", "-w", "2", "-b", "127.0.0.1:0", "web_flask:app"]
    result = compare(argv, tmp_path, FLASK_REQUESTS)
    assert result.with_middleware == result.without
    assert result.without[5].startswith(b"HTTP/1.1 418 ")
    assert result.without[6].startswith(b"HTTP/1.1 500 ")
    assert result.log.count("RuntimeError: boom from flask") == 1
    # Each of the two workers counts its own requests; the stats request reached one of them.
    assert sum(int(str(r["requests"])) for r in result.routes.values()) >= 1


def test_gunicorn_flask_counts_per_route(tmp_path: Path) -> None:
    argv = [str(BIN / "gunicorn"), "--no-control-socket", "-w", "1", "-b", "127.0.0.1:0", "web_flask:app"]
    result = compare(argv, tmp_path, FLASK_REQUESTS)
    assert result.with_middleware == result.without
    routes = result.routes
    assert routes["/items/<int:item_id>"]["requests"] == 2
    assert str(routes["/items/<int:item_id>"]["handler"]).endswith("web_flask.py:item")
    assert routes["/boom"]["errors"] == 1
    assert routes["/teapot"]["requests"] == 1
    assert routes["<unmatched>"]["requests"] == 1


def test_gunicorn_django(tmp_path: Path) -> None:
    argv = [str(BIN / "gunicorn"), "--no-control-socket", "-w", "1", "-b", "127.0.0.1:0", "web_django:application"]
    requests = [get("/"), get("/items/5/?q=a"), get("/items/6/"), get("/items/x/"), get("/boom/"), get("/items/5")]
    result = compare(argv, tmp_path, requests, "/_stats/")
    assert result.with_middleware == result.without
    assert result.without[4].startswith(b"HTTP/1.1 500 ")
    assert result.log.count("RuntimeError: boom from django") == 1
    routes = result.routes
    assert routes["/items/<int:item_id>/"]["requests"] == 2
    assert str(routes["/items/<int:item_id>/"]["handler"]).endswith("web_django.py:item")
    assert routes["/boom/"]["errors"] == 1
    assert routes["/"]["requests"] == 1
    assert routes["<unmatched>"]["requests"] == 2  # a 404 and CommonMiddleware's slash redirect


@pytest.mark.parametrize("app", ["web_starlette:app", "web_fastapi:app"])
def test_oomguard_run_counts_uvicorn_requests_without_code_change(tmp_path: Path, app: str) -> None:
    argv = [str(BIN / "oomguard"), "run", "--", str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", "0"]
    env = server_env(OOMGUARD_DUMP_DIR=str(tmp_path / "dumps"))  # no middleware in the app
    with serve(argv, tmp_path / "server.log", env=env) as server:
        for _ in range(3):
            http(server.port, get("/items/1"))
        routes = stats(server)
    assert routes["/items/{item_id}"]["requests"] == 3
