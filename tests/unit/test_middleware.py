"""The ASGI and WSGI middleware change nothing about a request: same objects through, same exceptions out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import pytest

from oomguard import UNMATCHED_ROUTE, Traffic
from oomguard.integrations.asgi import OomguardMiddleware, Scope, route_of_scope
from oomguard.integrations.autowrap import is_asgi, wrap_app
from oomguard.integrations.wsgi import ROUTE_KEY, OomguardWSGIMiddleware


class Route:
    def __init__(self, path: str, endpoint: object = None) -> None:
        self.path = path
        self.endpoint = endpoint


class Mount(Route):
    routes: tuple[Route, ...] = ()


class Recorder:
    """An ASGI app that records what it was called with and plays back messages."""

    def __init__(self, route: str | None = "/items/{id}", exc: BaseException | None = None) -> None:
        self.calls: list[tuple[Scope, Any, Any]] = []
        self.route = route
        self.exc = exc

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls.append((scope, receive, send))
        if self.route is not None:
            scope["route"] = Route(self.route)
        if self.exc is not None:
            raise self.exc
        for i in range(3):
            await send({"type": "http.response.body", "body": b"%d" % i, "more_body": i < 2})


async def receive() -> dict[str, Any]:
    return {"type": "http.request"}


def run(app: Any, scope: Scope) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_asgi_passes_the_same_objects_and_counts_the_route() -> None:
    inner, traffic = Recorder(), Traffic(sample_every=1, memory=lambda: 0)
    app = OomguardMiddleware(inner, traffic=traffic)
    scope: Scope = {"type": "http", "path": "/items/1"}
    sent = run(app, scope)
    assert [m["body"] for m in sent] == [b"0", b"1", b"2"]  # streamed as the app sent it
    seen_scope, seen_receive, _ = inner.calls[0]
    assert seen_scope is scope
    assert seen_receive is receive
    stats = traffic.snapshot().route("/items/{id}")
    assert stats is not None
    assert stats.requests == 1


def test_asgi_reraises_the_apps_own_exception() -> None:
    error = KeyError("from the app")
    traffic = Traffic(memory=lambda: 0)
    app = OomguardMiddleware(Recorder(exc=error), traffic=traffic)
    with pytest.raises(KeyError) as caught:
        run(app, {"type": "http"})
    assert caught.value is error
    stats = traffic.snapshot().route("/items/{id}")
    assert stats is not None
    assert stats.errors == 1


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_asgi_passes_other_scopes_through(kind: str) -> None:
    inner, traffic = Recorder(route=None), Traffic(memory=lambda: 0)
    scope: Scope = {"type": kind}
    run(OomguardMiddleware(inner, traffic=traffic), scope)
    assert inner.calls[0][0] == {"type": kind}
    assert traffic.total == 0


def test_asgi_wrapped_twice_counts_once() -> None:
    traffic = Traffic(memory=lambda: 0)
    app = OomguardMiddleware(OomguardMiddleware(Recorder(), traffic=traffic), traffic=traffic)
    run(app, {"type": "http"})
    assert traffic.total == 1


def test_asgi_accounting_failure_never_reaches_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def broken(scope: Scope) -> str:
        raise RuntimeError("agent bug")

    app = OomguardMiddleware(Recorder(), traffic=Traffic(memory=lambda: 0), route=broken)
    assert len(run(app, {"type": "http"})) == 3
    assert "request accounting failed" in caplog.text


def test_route_of_scope() -> None:
    assert route_of_scope({"route": Route("/a/{x}")}) == "/a/{x}"
    assert route_of_scope({}) == UNMATCHED_ROUTE
    assert route_of_scope({"route": Mount("/api")}) == UNMATCHED_ROUTE
    mounted = {"route": Route("/users/{id}"), "root_path": "/proxy/api", "app_root_path": "/proxy"}
    assert route_of_scope(mounted) == "/api/users/{id}"
    assert route_of_scope({"route": Route("/x"), "root_path": "/proxy"}) == "/x"


def endpoint() -> None:
    """A plain route's endpoint (FastAPI sets only scope["endpoint"] for these)."""


def test_route_of_scope_finds_a_plain_routes_path_through_the_router() -> None:
    class Router:
        def __init__(self) -> None:
            self.routes = [Route("/other"), Route("/openapi.json", endpoint)]

    assert route_of_scope({"endpoint": endpoint, "router": Router()}) == "/openapi.json"


class Body:
    """A response iterable the server may special-case (e.g. a file wrapper)."""

    def __iter__(self) -> Any:
        return iter([b"body"])


def test_wsgi_returns_the_apps_own_iterable_and_start_response() -> None:
    body = Body()
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(start_response)
        environ[ROUTE_KEY] = "/items/<id>"
        start_response("200 OK", [])
        return body

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        pass

    traffic = Traffic(memory=lambda: 0)
    wrapped = OomguardWSGIMiddleware(app, traffic=traffic)
    assert wrapped({}, start_response) is body
    assert seen == [start_response]
    stats = traffic.snapshot().route("/items/<id>")
    assert stats is not None
    assert stats.requests == 1


def test_wsgi_reraises_the_apps_own_exception() -> None:
    error = ValueError("from the app")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise error

    traffic = Traffic(memory=lambda: 0)
    with pytest.raises(ValueError, match="from the app") as caught:
        OomguardWSGIMiddleware(app, traffic=traffic)({}, lambda *a: None)
    assert caught.value is error
    stats = traffic.snapshot().route(UNMATCHED_ROUTE)
    assert stats is not None
    assert stats.errors == 1


def test_autowrap_tells_asgi_from_wsgi() -> None:
    def wsgi(environ: Any, start_response: Any) -> Iterable[bytes]:
        return []

    assert is_asgi(Recorder())
    assert not is_asgi(wsgi)
    assert isinstance(wrap_app(Recorder()), OomguardMiddleware)
    wrapped = wrap_app(wsgi)
    assert isinstance(wrapped, OomguardWSGIMiddleware)
    assert wrap_app(wrapped) is wrapped


def test_logging_uses_the_oomguard_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)

    def broken(environ: Any) -> tuple[str, object]:
        raise RuntimeError("agent bug")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return [b"ok"]

    assert OomguardWSGIMiddleware(app, traffic=Traffic(memory=lambda: 0), route=broken)({}, print) == [b"ok"]
    assert [r.name for r in caplog.records] == ["oomguard.integrations.wsgi"]
