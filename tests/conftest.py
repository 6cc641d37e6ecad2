"""A real `redis-server`, started on a free loopback port for the test session and stopped after.

No persistence (`--save ""`, no AOF). `make test` installs the server when it is missing; a
missing binary here is a failure, never a skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis

if TYPE_CHECKING:
    from redis_server import RedisServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `make test` installs it (Debian's redis-server package)")
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="interlock-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", folder, "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    pytest.fail(f"redis-server exited with code {process.returncode} at start")
                time.sleep(0.025)
        else:
            pytest.fail("redis-server did not answer within 5 s")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_redis_server() -> Iterator[Callable[..., RedisServer]]:
    """A factory of `redis_server.RedisServer`s of the test's own (each on a free loopback port,
    with its own temporary directory), started; every one is stopped when the test ends."""
    from redis_server import RedisServer

    servers: list[RedisServer] = []

    def make(**options: Any) -> RedisServer:
        server = RedisServer(**options)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """A real Redis Cluster of 3 masters (no replicas) on loopback ports, for the session:
    its `redis+cluster://` URL (tests/redis_cluster.py)."""
    from redis_cluster import RedisCluster

    cluster = RedisCluster(masters=3).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()
