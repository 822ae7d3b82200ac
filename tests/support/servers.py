"""Real servers on 127.0.0.1 for integration tests: started on port 0, the bound port read from their log."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BIN", "PROGRAMS", "Server", "http", "normalise", "serve", "server_env"]

BIN = Path(sys.executable).parent
PROGRAMS = Path(__file__).resolve().parents[1] / "integration" / "programs"
_PORT = re.compile(rb"(?:running on|Listening at:) http://127\.0\.0\.1:(\d+)")


@dataclass
class Server:
    """A running server process and the port it bound."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        """Everything it logged so far."""
        return self.log.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def server_env(**extra: str) -> dict[str, str]:
    """The test's environment without any OOMGUARD_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OOMGUARD_")}
    env["PYTHONHASHSEED"] = "0"  # set-ordered headers (Starlette's allow) must not differ between runs
    env["PYTHONPATH"] = os.pathsep.join([str(PROGRAMS), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def wait_for_port(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> int:
    """The port the server logged, once it accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _PORT.search(log.read_bytes())
        if match:
            port = int(match.group(1))
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return port
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.02)
    raise RuntimeError(f"server did not start in {timeout}s:\n{log.read_text(errors='replace')[-4000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (and its workers), SIGKILL after a grace period."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@contextlib.contextmanager
def serve(argv: Sequence[str], log: Path, *, env: Mapping[str, str], cwd: Path = PROGRAMS) -> Iterator[Server]:
    """Start ``argv`` (its log to ``log``) and yield it once it accepts connections."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True
        )
    try:
        yield Server(proc, wait_for_port(proc, log), log)
    finally:
        stop(proc)


def http(port: int, request: bytes, timeout: float = 30.0) -> bytes:
    """Send one raw HTTP/1.1 request (``Connection: close``) and return the raw response bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


_DATE = re.compile(rb"(?im)^date: [^\r\n]*\r\n")


def normalise(response: bytes) -> bytes:
    """The response with its ``Date`` header blanked (the only byte that may differ between two runs)."""
    return _DATE.sub(b"date: -\r\n", response)
