"""HTTP servers for the ingest tests, on loopback only: an ASGI app served by a real uvicorn
server in a thread of its own (`Served`), and helpers for `interlock serve` subprocesses.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

HOST = "127.0.0.1"  # never any other address


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Served:
    """`with Served(app) as served:` serves `app` (its lifespan included) on a free loopback
    port until the block ends; `served.url` is its base URL, `served.call(coroutine)` runs a
    coroutine on the server's event loop (where the app's router delivers)."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # (TCP_NODELAY)
        self.sock.bind((HOST, 0))
        self.sock.listen(1024)
        self.url = f"http://{HOST}:{self.sock.getsockname()[1]}"
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="uvicorn", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        asyncio.run(main())

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread ended at start (its lifespan failed?)")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


def raw_exchange(port: int, head: bytes, body_parts: Sequence[bytes] = (), timeout: float = 5) -> tuple[int, bytes]:
    """Send a request's head and body parts on a plain socket, without finishing the body if
    the parts do not; the status and raw response the server sends back before it closes."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        response = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    status = int(response.split(b" ", 2)[1])
    return status, response


def wait_healthy(url: str, process: subprocess.Popen[Any], log: Path, timeout: float = 20) -> None:
    """Poll `url`/healthz until it answers 200; fail with the process's log if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode} at start:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"serve did not answer /healthz within {timeout} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> int:
    """SIGTERM, and the exit code once it has ended (SIGKILL after `timeout`: then a failure)."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"serve did not stop within {timeout} s of SIGTERM") from None
    return int(process.returncode)
