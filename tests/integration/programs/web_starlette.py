"""A Starlette app exercising what the middleware must not change (``OOMGUARD_TEST_MIDDLEWARE=1`` adds it)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

import oomguard
from oomguard.integrations.starlette import OomguardMiddleware

retained: list[bytes] = []


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def item(request: Request) -> Response:
    response = JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q")})
    response.set_cookie("seen", "1", httponly=True)
    response.headers["X-Custom"] = "a, b"
    return response


async def created(request: Request) -> Response:
    body = await request.body()
    return Response(body[::-1], status_code=201, media_type="application/octet-stream")


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"chunk {i}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def boom(request: Request) -> Response:
    raise RuntimeError("boom from the app")


async def leak(request: Request) -> Response:
    retained.append(b"x" * (256 * 1024))
    return PlainTextResponse("leaked")


async def stats(request: Request) -> Response:
    return PlainTextResponse(json.dumps(oomguard.get_traffic().snapshot().to_json()))


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/items/{item_id}", item),
        Route("/created", created, methods=["POST"]),
        Route("/stream", stream),
        Route("/boom", boom),
        Route("/leak", leak),
        Route("/_stats", stats),
        Mount("/api", routes=[Route("/users/{user_id:int}", item)]),
        WebSocketRoute("/ws", echo),
    ]
)
if os.environ.get("OOMGUARD_TEST_MIDDLEWARE") == "1":
    app.add_middleware(OomguardMiddleware)
