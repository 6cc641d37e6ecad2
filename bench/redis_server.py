"""A throwaway `redis-server` for the Redis benchmarks: no persistence, on a free port of 127.0.0.1 only.

    with redis_server() as url:     # "redis://127.0.0.1:PORT" (append "/DB" for a database)
        ...

`start_server()` is the same without the `with`: it returns the process and the URL, and the
caller terminates the process. Also here: the helpers the scripts share (the interlock in use,
percentiles, a Redis client for a URL).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
import redis.cluster

HOST = "127.0.0.1"  # never any other address


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """A started `redis-server` (it answers PING) and its URL, without a database number."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (`make test` installs it)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL)
    client = redis.Redis(host=HOST, port=port)
    try:
        for _ in range(400):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.025)
        else:
            process.terminate()
            sys.exit(f"redis-server did not answer on {HOST}:{port}")
    finally:
        client.close()
    return process, f"redis://{HOST}:{port}"


@contextmanager
def redis_server() -> Iterator[str]:
    process, url = start_server()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


def flush(url: str) -> None:
    """Empty the database of `url` (which names one: redis://HOST:PORT/DB), or every master of
    the cluster a `redis+cluster://` URL names."""
    if url.startswith("redis+cluster://"):
        host, port = url.removeprefix("redis+cluster://").split(",")[0].split("/")[0].rsplit(":", 1)
        cluster = redis.cluster.RedisCluster(host=host, port=int(port))
        cluster.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)  # type: ignore[no-untyped-call]
        cluster.close()
        return
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of values, nan when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def engine_banner() -> str:
    """Which interlock this run imports (the new engine in /work/main, or a baseline checkout)."""
    import interlock

    folder = os.path.dirname(os.path.dirname(os.path.abspath(interlock.__file__)))
    commit = subprocess.run(["git", "-C", folder, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--", "runtime"], capture_output=True,
                           text=True).stdout.strip()
    return f"interlock from {interlock.__file__} (HEAD {commit}{', runtime/ modified' if dirty else ''})"
