"""`interlock serve` as a real subprocess on loopback: it starts, serves, refuses to start
when used wrongly (exit 2, one line, no traceback), stops on SIGTERM with exit 0, runs
several workers on Redis, and loses nothing of 1,000 concurrent requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from served import HOST, free_port, stop, wait_healthy

PROJECT = """
event job.created { n: int }
dead_letter dlq
target work { mode async, dead_letter dlq, concurrency 16, retry { attempts 3 backoff fixed 10ms } }
target quote { mode sync, timeout 1s }
route jobs { on job.created to work }
route quotes { on quote.requested to quote }
"""
HANDLERS = '''
"""Handlers for tests/test_serve.py: `work` appends each event's id to $HANDLED_LOG."""
import asyncio
import os
import signal
import socket


async def work(event):
    with open(os.environ["HANDLED_LOG"], "a", encoding="utf-8") as log:
        log.write(event.id + "\\n")


async def slow_work(event):
    await asyncio.sleep(0.5)
    await work(event)


def quote(event):
    return {"pid": os.getpid()}


HANDLERS = {"work": work, "quote": quote}
SLOW = {"work": slow_work, "quote": quote}
NOT_HANDLERS = 42
WRONG_TARGET = {"billing": work}


def register(router):
    router.handler("work")(work)
    router.handler("quote")(quote)
'''


def redis_db(redis_url: str, db: int) -> str:
    """The URL of database `db` of the test server, emptied: each test has one of its own."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


class Serve:
    """`interlock serve` in a folder of its own (project, handlers module, log files)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "jobs.route").write_text(PROJECT)
        (folder / "handlers.py").write_text(HANDLERS)
        self.handled_log = folder / "handled.log"
        self.stderr = folder / "serve.stderr"
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.env = {**os.environ, "HANDLED_LOG": str(self.handled_log)}
        self.processes: list[subprocess.Popen[bytes]] = []

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "interlock.cli", "serve", "jobs.route", *args]

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run to the end (for the ways it refuses to start)."""
        return subprocess.run(self.command(*args), cwd=self.folder, env=env or self.env, capture_output=True,
                              text=True, timeout=30, check=False)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start serving on the free port and wait until /healthz answers."""
        with self.stderr.open("wb") as stderr:
            process = subprocess.Popen(self.command("--port", str(self.port), *args), cwd=self.folder,
                                       env=env or self.env, stdout=subprocess.DEVNULL, stderr=stderr)
        self.processes.append(process)
        wait_healthy(self.url, process, self.stderr)
        return process

    def wait_logged(self, text: str, times: int, timeout: float = 20) -> None:
        """Wait until the log has `text` `times` times (each worker logs its start)."""
        deadline = time.monotonic() + timeout
        while self.stderr.read_text().count(text) < times:
            assert time.monotonic() < deadline, f"{text!r} not logged {times} times:\n{self.stderr.read_text()}"
            time.sleep(0.05)

    def handled(self) -> list[str]:
        return self.handled_log.read_text().split() if self.handled_log.exists() else []

    def wait_handled(self, ids: set[str], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.handled()) and time.monotonic() < deadline:
            time.sleep(0.05)
        missing = ids - set(self.handled())
        assert not missing, f"{len(missing)} accepted events never handled, e.g. {sorted(missing)[:5]}"

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(tmp_path)
    yield server
    server.close()


def job(event_id: str, n: int = 1) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "tests", "type": "job.created", "data": {"n": n}}


def post(url: str, event: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/events", content=json.dumps(event), timeout=10,
                      headers={"content-type": "application/cloudevents+json", **headers})


def test_serve_starts_serves_and_stops_on_sigterm(serve: Serve) -> None:
    process = serve.start("--store", "memory://", "--handlers", "handlers:HANDLERS")
    assert httpx.get(f"{serve.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{serve.url}/readyz").status_code == 200
    assert post(serve.url, job("one")).status_code == 202
    serve.wait_handled({"one"})
    started = time.monotonic()
    assert stop(process) == 0
    assert time.monotonic() - started < 5
    log = serve.stderr.read_text()
    assert f"serving jobs.route on {serve.url} (store MemoryStore(), 1 worker)" in log
    assert "stopped delivering" in log and "Traceback" not in log


def test_on_uvloop_it_serves_and_delivers_through_redis(serve: Serve, redis_url: str) -> None:
    """`--loop uvloop` (interlock[fast]): the Redis store's own connections run on uvloop's
    transports too."""
    process = serve.start("--store", redis_db(redis_url, 12), "--loop", "uvloop", "--handlers", "handlers:HANDLERS")
    ids = {f"uv-{n}" for n in range(20)}
    for event_id in sorted(ids):
        assert post(serve.url, job(event_id)).status_code == 202
    serve.wait_handled(ids)
    assert stop(process) == 0
    assert "Traceback" not in serve.stderr.read_text()


def test_on_memory_what_was_accepted_is_delivered_before_exit(serve: Serve) -> None:
    process = serve.start("--store", "memory://", "--handlers", "handlers:SLOW")
    ids = {f"late-{n}" for n in range(5)}
    for event_id in ids:
        assert post(serve.url, job(event_id)).status_code == 202
    assert stop(process) == 0  # at once: the handlers take half a second
    assert set(serve.handled()) == ids


def test_on_redis_deliveries_in_flight_at_sigterm_stay_pending(serve: Serve, redis_url: str) -> None:
    url = redis_db(redis_url, 14)
    process = serve.start("--store", url, "--handlers", "handlers:SLOW")
    ids = {f"flight-{n}" for n in range(3)}
    for event_id in ids:
        assert post(serve.url, job(event_id)).status_code == 202
    with redis.Redis.from_url(url) as client:
        deadline = time.monotonic() + 5
        while client.xpending("interlock:{deliveries.work}", "interlock")["pending"] < 3:
            assert time.monotonic() < deadline, "the deliveries were never read"
            time.sleep(0.02)
        assert stop(process) == 0  # while the handlers sleep
        assert serve.handled() == []
        assert client.xpending("interlock:{deliveries.work}", "interlock")["pending"] == 3  # for another instance


def test_a_token_from_the_environment_guards_post(serve: Serve) -> None:
    env = {**serve.env, "INGEST_TOKEN": "t0ken-value"}
    process = serve.start("--store", "memory://", "--handlers", "handlers:register", "--token-env", "INGEST_TOKEN",
                          env=env)
    assert post(serve.url, job("no-token")).status_code == 401
    assert post(serve.url, job("token"), authorization="Bearer t0ken-value").status_code == 202
    assert stop(process) == 0
    assert "t0ken-value" not in serve.stderr.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (("--store", "memory://", "--workers", "2"), "--workers 2 needs a shared store such as redis://"),
    (("--store", "memory://", "--handlers", "handlers"), "--handlers takes MODULE:OBJECT"),
    (("--store", "memory://", "--handlers", "nowhere:HANDLERS"), "no module named `nowhere`"),
    (("--store", "memory://", "--handlers", "handlers:MISSING"), "`handlers` has no `MISSING`"),
    (("--store", "memory://", "--handlers", "handlers:NOT_HANDLERS"), "handlers:NOT_HANDLERS is a int"),
    (("--store", "memory://", "--handlers", "handlers:WRONG_TARGET"), "no target `billing`"),
    (("--store", "memory://", "--token-env", "INTERLOCK_TEST_NO_SUCH_VARIABLE"),
     "the environment variable `INTERLOCK_TEST_NO_SUCH_VARIABLE` is not set"),
    (("--store", "memcached://x"), "unknown store 'memcached://x'"),
])
def test_used_wrongly_it_exits_2_saying_why(serve: Serve, args: tuple[str, ...], message: str) -> None:
    result = serve.run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_refused(serve: Serve) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        result = serve.run("--store", "memory://", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2 and f"cannot listen on {HOST}:" in result.stderr, result.stderr


def test_an_empty_token_variable_is_refused(serve: Serve) -> None:
    result = serve.run("--store", "memory://", "--token-env", "EMPTY", env={**serve.env, "EMPTY": ""})
    assert result.returncode == 2 and "the environment variable `EMPTY` is empty" in result.stderr


def test_a_project_with_errors_exits_1_with_its_diagnostics(serve: Serve) -> None:
    (serve.folder / "jobs.route").write_text("route r { on job.created to nowhere }\n")
    result = serve.run("--store", "memory://")
    assert result.returncode == 1 and "unknown target `nowhere`" in result.stderr


def test_an_unreachable_store_exits_1(serve: Serve) -> None:
    result = serve.run("--store", f"redis://:pw@{HOST}:{free_port()}/0", "--handlers", "handlers:HANDLERS",
                       "--port", str(serve.port))
    assert result.returncode == 1, result.stderr
    assert "cannot deliver: StoreUnavailable: cannot reach Redis at redis://:***@" in result.stderr
    assert ":pw@" not in result.stderr and "Traceback" not in result.stderr


def test_two_workers_on_redis_serve_requests(serve: Serve, redis_url: str) -> None:
    process = serve.start("--store", redis_db(redis_url, 13), "--workers", "2", "--handlers", "handlers:HANDLERS")
    serve.wait_logged("Started server process", 2)  # /healthz answers once the first is up
    ids = {f"w-{n}" for n in range(40)}
    with httpx.Client(timeout=10) as client:  # (a connection per request: the workers share them out)
        for event_id in sorted(ids):
            response = client.post(f"{serve.url}/events", content=json.dumps(job(event_id)),
                                   headers={"content-type": "application/cloudevents+json", "connection": "close"})
            assert response.status_code == 202, response.text
        reply = client.post(f"{serve.url}/events", content="{}",
                            headers={"ce-specversion": "1.0", "ce-id": "q", "ce-type": "quote.requested",
                                     "ce-source": "tests", "content-type": "application/json"})
        assert reply.json()["replies"]["quote"]["pid"] != process.pid  # answered by a worker
    serve.wait_handled(ids)
    assert stop(process, 20) == 0
    log = serve.stderr.read_text()
    assert "2 workers" in log and log.count("stopped delivering") == 2 and "Traceback" not in log


def test_a_thousand_concurrent_requests_lose_nothing(serve: Serve, redis_url: str) -> None:
    process = serve.start("--store", redis_db(redis_url, 12), "--handlers", "handlers:HANDLERS")

    async def fire() -> list[httpx.Response]:
        # 1,000 requests in flight at once, on 1,000 connections. Twenty clients of 50 each:
        # one httpx pool of 1,000 spends seconds on its own bookkeeping (it scans every waiting
        # request whenever a connection changes state), which the server would not be tested by.
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=serve.url, limits=limits,
                                                                         timeout=60)) for _ in range(20)]
            return await asyncio.gather(*(
                clients[n % 20].post("/events", content=json.dumps(job(f"load-{n}", n)),
                                     headers={"content-type": "application/cloudevents+json"})
                for n in range(1000)))

    responses = asyncio.run(fire())
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == 1000, {s: statuses.count(s) for s in set(statuses)}
    accepted = {r.json()["id"] for r in responses}
    assert len(accepted) == 1000
    serve.wait_handled(accepted)
    assert stop(process) == 0


def test_stop_with_sigint_too(serve: Serve) -> None:
    process = serve.start("--store", "memory://", "--handlers", "handlers:HANDLERS")
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0




# ---- found by review ---------------------------------------------------------------------


def test_a_token_read_with_a_newline_still_matches(serve: Serve) -> None:
    serve.start("--store", "memory://", "--handlers", "handlers:HANDLERS", "--token-env", "INGEST_TOKEN",
                env={**serve.env, "INGEST_TOKEN": "t0ken-from-a-file\n"})
    assert post(serve.url, job("t1"), authorization="Bearer t0ken-from-a-file").status_code == 202


def test_a_handlers_module_that_calls_sys_exit_at_import_exits_2_saying_so(serve: Serve) -> None:
    (serve.folder / "leaving.py").write_text("import sys\nsys.exit(3)\n")
    result = serve.run("--store", "memory://", "--handlers", "leaving:HANDLERS")
    assert result.returncode == 2, result.stderr
    assert "importing `leaving` failed: SystemExit" in result.stderr


def test_a_request_head_over_the_limit_is_refused_and_the_server_goes_on(serve: Serve) -> None:
    serve.start("--store", "memory://", "--handlers", "handlers:HANDLERS")
    try:  # (the server answers and closes while the client may still be sending: a reset then)
        response = httpx.post(f"{serve.url}/events", content=json.dumps(job("h1")), timeout=10,
                              headers={"content-type": "application/cloudevents+json", "x-big": "x" * 2_000_000})
        assert response.status_code in (400, 431)
    except httpx.TransportError:
        pass
    assert post(serve.url, job("h2")).status_code == 202


def test_workers_end_when_the_command_is_killed(serve: Serve, redis_url: str) -> None:
    import re
    import signal

    process = serve.start("--store", redis_db(redis_url, 11), "--workers", "2", "--handlers", "handlers:HANDLERS")
    serve.wait_logged("Started server process", 2)
    found = re.search(r"started 2 workers \(pids (\d+), (\d+)\)", serve.stderr.read_text())
    assert found, serve.stderr.read_text()
    workers = [int(pid) for pid in found.groups()]
    process.send_signal(signal.SIGKILL)
    process.wait(5)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too
            return stat.read().split(") ")[1][0] != "Z"

    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "workers outlived the command"
    # The port is free again: a supervisor can start the command anew.
    serve.start("--store", redis_db(redis_url, 11), "--handlers", "handlers:HANDLERS")


def test_serve_speaks_https_with_a_certificate(serve: Serve, tmp_path: Path) -> None:
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert, key, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.private_key_pem.write_to_path(str(key))
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    authority.cert_pem.write_to_path(str(ca))
    with serve.stderr.open("wb") as stderr:
        process = subprocess.Popen(serve.command("--port", str(serve.port), "--store", "memory://", "--handlers",
                                                 "handlers:HANDLERS", "--tls-cert", str(cert), "--tls-key", str(key)),
                                   cwd=serve.folder, env=serve.env, stdout=subprocess.DEVNULL, stderr=stderr)
    serve.processes.append(process)
    url = f"https://{HOST}:{serve.port}"
    import ssl

    trusted = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/healthz", verify=trusted, timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            assert process.poll() is None, serve.stderr.read_text()
            assert time.monotonic() < deadline, serve.stderr.read_text()
            time.sleep(0.05)
    response = httpx.post(f"{url}/events", content=json.dumps(job("tls-1")), verify=trusted, timeout=10,
                          headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 202, response.text
    serve.wait_handled({"tls-1"})
    assert f"serving jobs.route on {url}" in serve.stderr.read_text()
    with pytest.raises(httpx.TransportError):  # plain HTTP is not spoken there
        httpx.get(f"http://{HOST}:{serve.port}/healthz", timeout=2).raise_for_status()
    assert stop(process) == 0


def test_a_certificate_that_does_not_load_exits_2(serve: Serve, tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    result = serve.run("--store", "memory://", "--tls-cert", str(tmp_path / "bad.pem"), "--tls-key",
                       str(tmp_path / "bad.pem"))
    assert result.returncode == 2 and "cannot load --tls-cert" in result.stderr, result.stderr
