"""Cost of oomguard's ASGI middleware: per request (µs) and on a server's throughput, with/without, in one run.

Run: ``.venv/bin/python tests/benchmarks/bench_middleware.py [--rounds 5] [--seconds 3] [--connections 32]``.

Prints:
* the median per-request cost of the middleware, in process: a hello-world
  Starlette app called through ASGI with and without it (the difference), and
  of ``Traffic.begin``/``end`` alone (sampled and not);
* requests/s of the same app under uvicorn, with and without the middleware,
  loaded by a separate process (keep-alive HTTP/1.1 over raw sockets), in
  alternating rounds, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from oomguard import Traffic
from oomguard.integrations.asgi import OomguardMiddleware

HERE = Path(__file__).resolve()
BIN = Path(sys.executable).parent
REQUEST = b"GET /items/7 HTTP/1.1\r\nHost: bench\r\n\r\n"


async def item(request: Request) -> Response:
    return PlainTextResponse("hello")


def build_app(middleware: bool) -> Any:
    """The hello-world app (``/items/{item_id}``), optionally behind the middleware."""
    app = Starlette(routes=[Route("/items/{item_id}", item)])
    if middleware:
        app.add_middleware(OomguardMiddleware)
    return app


app = build_app(os.environ.get("BENCH_MIDDLEWARE") == "1")


# -- in process --------------------------------------------------------------------


async def _call_batch(asgi: Any, n: int) -> float:
    scope_base = {"type": "http", "method": "GET", "path": "/items/7", "raw_path": b"/items/7", "root_path": ""}
    scope_base |= {"headers": [], "query_string": b"", "http_version": "1.1", "scheme": "http"}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    start = time.perf_counter_ns()
    for _ in range(n):
        await asgi(dict(scope_base), receive, send)
    return (time.perf_counter_ns() - start) / n / 1000


def in_process_cost(batches: int = 60, per_batch: int = 2000) -> tuple[float, float, float]:
    """Median µs per request without and with the middleware (interleaved batches), and their difference."""
    bare, wrapped = build_app(False), build_app(True)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_call_batch(bare, 2000))  # warm both up (the app's middleware stack is built lazily)
    loop.run_until_complete(_call_batch(wrapped, 2000))
    without, with_ = [], []
    for _ in range(batches):
        without.append(loop.run_until_complete(_call_batch(bare, per_batch)))
        with_.append(loop.run_until_complete(_call_batch(wrapped, per_batch)))
    loop.close()
    diffs = [w - b for w, b in zip(with_, without, strict=True)]
    return statistics.median(without), statistics.median(with_), statistics.median(diffs)


def traffic_cost(sample_every: int, n: int = 200_000) -> float:
    """Median µs of one ``begin()`` + ``end()`` pair."""
    traffic = Traffic(sample_every=sample_every)
    runs = []
    for _ in range(9):
        start = time.perf_counter_ns()
        for _ in range(n // 10):
            traffic.end(traffic.begin(), "/items/{item_id}")
        runs.append((time.perf_counter_ns() - start) / (n // 10) / 1000)
    return statistics.median(runs)


# -- a real server under load from another process --------------------------------------


async def _connection(port: int, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.monotonic() < deadline:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
        counts.append(done)


async def _load(port: int, seconds: float, connections: int) -> float:
    counts: list[int] = []
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(_connection(port, deadline, counts) for _ in range(connections)))
    return sum(counts) / (time.monotonic() - start)


def start_server(middleware: bool) -> tuple[subprocess.Popen[bytes], int]:
    env = dict(os.environ, BENCH_MIDDLEWARE="1" if middleware else "0", PYTHONPATH=str(HERE.parent))
    argv = [str(BIN / "uvicorn"), f"{HERE.stem}:app", "--port", "0", "--no-access-log", "--log-level", "info"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, cwd=HERE.parent)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(rb"running on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return proc, int(match.group(1))
    raise RuntimeError("uvicorn did not start")


def throughput(middleware: bool, seconds: float, connections: int) -> float:
    proc, port = start_server(middleware)
    try:
        load = [sys.executable, str(HERE), "--load", str(port), str(seconds), str(connections)]
        subprocess.run(load, check=True, capture_output=True, timeout=seconds + 30)  # warm-up round
        result = subprocess.run(load, check=True, capture_output=True, text=True, timeout=seconds + 30)
        return float(result.stdout.strip())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--load", nargs=3, metavar=("PORT", "SECONDS", "CONNECTIONS"))
    args = parser.parse_args()
    if args.load:  # the load generator process
        port, seconds, connections = int(args.load[0]), float(args.load[1]), int(args.load[2])
        print(f"{asyncio.run(_load(port, seconds, connections)):.1f}")
        return

    bare, wrapped, diff = in_process_cost()
    print("in process (Starlette hello world called through ASGI, median of 60 interleaved batches of 2000):")
    print(f"  without middleware      {bare:7.2f} µs/request")
    print(f"  with middleware         {wrapped:7.2f} µs/request")
    print(f"  middleware cost         {diff:7.2f} µs/request")
    print(f"  Traffic.begin+end       {traffic_cost(16):7.2f} µs (1 in 16 sampled, default)")
    print(f"                          {traffic_cost(1):7.2f} µs (every request sampled: two statm reads)")

    without, with_ = [], []
    for _ in range(args.rounds):
        without.append(throughput(False, args.seconds, args.connections))
        with_.append(throughput(True, args.seconds, args.connections))
    print(
        f"uvicorn + Starlette, load from a separate process ({args.connections} keep-alive connections, "
        f"{args.rounds} alternating rounds of {args.seconds:.0f} s):"
    )
    print(f"  without middleware      {statistics.median(without):9.0f} req/s   rounds: {[round(x) for x in without]}")
    print(f"  with middleware         {statistics.median(with_):9.0f} req/s   rounds: {[round(x) for x in with_]}")
    ratio = statistics.median(with_) / statistics.median(without)
    print(f"  ratio with/without      {ratio:9.3f}   (throughput {(ratio - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
