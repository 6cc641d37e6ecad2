"""Fault injection on real redis-server processes: what delivery promises must survive.

Each test starts a server of its own (`make_redis_server`, tests/redis_server.py), runs the
workload of tests/fault_workload.py through a router on it, injects one fault mid-stream
from a background thread, and checks the invariants: every accepted (event, target) pair
handled or dead-lettered, failing deliveries never handled, each key of the ordered target
in order, `drain` back within its bound, the engine's background tasks alive. Select them
with `pytest -m faults`. Every test is bounded (drain, stop, publish and re-publish all have
time limits), so a broken engine fails in well under a minute instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_workload import (
    Handled,
    Outcome,
    Publication,
    Recorder,
    Workload,
    assert_invariants,
    check_invariants,
    dead_letter_stream_key,
    event_data,
    run_bounded,
    write_project,
)
from redis_server import Fault, RedisServer, free_port, terminate

import interlock

pytestmark = pytest.mark.faults

log = logging.getLogger("faults.test")

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).parent / "fault_worker.py"
# Every option of the router is left at its default: a read whose reply was lost with a killed
# connection is taken back by the reader itself, not after `claim_idle_ms`.
ROUTER_OPTIONS: dict[str, Any] = {}

MakeServer = Callable[..., RedisServer]


@pytest.fixture(autouse=True)
def _fault_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The harness's own timeline (server starts, faults, drain) in the report of a failing test."""
    caplog.set_level(logging.INFO, logger="faults")


def _router(project: Path, server: RedisServer) -> interlock.Router:
    return interlock.load(str(project), store=server.url, **ROUTER_OPTIONS)


def _run(router: interlock.Router, fault: Fault, **workload: Any) -> Outcome:
    started = time.monotonic()
    outcome = run_bounded(Workload(router, fault=fault.start(), **workload).run())
    log.info("workload ran in %.1f s", time.monotonic() - started)
    return outcome


def test_redis_killed_without_persistence_mid_stream(make_redis_server: MakeServer, tmp_path: Path) -> None:
    """SIGKILL of a server without persistence mid-stream, started again 6 s later (empty):
    publishes during the outage raise and are published again; every event accepted after the
    restart is delivered, although streams, consumer groups, leases and the retry schedule
    all vanished with the server (they must be created again, and keys held by lost retries
    given up)."""
    server = make_redis_server()
    router = _router(write_project(tmp_path), server)
    fault = Fault("SIGKILL, down 6 s, no persistence", lambda: server.down_for(6))
    outcome = _run(router, fault)
    assert fault.cleared_at is not None
    assert_invariants(router, outcome, required_after=fault.cleared_at)


def test_redis_killed_with_appendonly_loses_nothing_accepted(make_redis_server: MakeServer, tmp_path: Path) -> None:
    """SIGKILL of a server with `appendonly yes` and `appendfsync always`, started again 4 s
    later (longer than the client's own retries): every event ever accepted is delivered, the
    ones accepted before the crash included, and background tasks outlive the outage."""
    server = make_redis_server(appendonly=True)
    router = _router(write_project(tmp_path), server)
    outcome = _run(router, Fault("SIGKILL, down 4 s, appendfsync always", lambda: server.down_for(4)))
    assert_invariants(router, outcome)


def test_out_of_memory_window_mid_stream(make_redis_server: MakeServer, tmp_path: Path) -> None:
    """`maxmemory 1` with `noeviction` for 3 s mid-stream: every write is refused with OOM
    (a ResponseError, not a lost connection). Publishes raise and are published again; the
    workers, the retry scheduler and the partition keepers outlive the errors."""
    server = make_redis_server()
    router = _router(write_project(tmp_path), server)
    fault = Fault("maxmemory 1 for 3 s", lambda: server.oom_window(3))
    outcome = _run(router, fault, pace=0.02)
    assert fault.result, "the server refused nothing with OOM: the fault did not land"
    assert_invariants(router, outcome)


def test_every_connection_killed_every_50ms(make_redis_server: MakeServer, tmp_path: Path) -> None:
    """`CLIENT KILL TYPE normal SKIPME yes` every 50 ms for 3 s: every connection of the
    process dies mid-command again and again (reads whose replies are lost, acks and retries
    sent twice); nothing accepted is lost, nothing failing is handled, keys stay in order."""
    server = make_redis_server()
    router = _router(write_project(tmp_path), server)
    fault = Fault("CLIENT KILL every 50 ms for 3 s", lambda: server.kill_clients(every=0.05, for_seconds=3))
    outcome = _run(router, fault)
    # (a router holds few connections: two pipelined ones, made again when a command is
    # waiting, and a pool that opens one when a rarer command needs it)
    assert fault.result >= 10, f"only {fault.result} connections were killed: the fault did not land"
    assert_invariants(router, outcome)


# ---- a publish that raised stored nothing and remembered nothing ---------------------------------

ASYNC_OK_SYNC_FAILS = {"plain": "ok", "ordered": "ok", "direct": "fail"}


def test_failed_sync_dead_letter_write_stores_and_remembers_nothing(
        make_redis_server: MakeServer, tmp_path: Path) -> None:
    """The sync target's dead letter cannot be written (its stream's key holds a string, so
    XADD fails with WRONGTYPE) while events whose sync handler fails are published: each
    publish must raise, and must leave nothing behind, neither the event's async deliveries
    nor its idempotency key. Once the key is deleted, publishing the same ids again is not a
    duplicate, and each event is delivered and dead-lettered in full."""
    server = make_redis_server()
    router = _router(write_project(tmp_path), server)
    workload = Workload(router)
    client = server.client()
    key = dead_letter_stream_key("dlq")
    problems: list[str] = []
    broken = [workload.publication(n, data=event_data(n, ASYNC_OK_SYNC_FAILS)) for n in range(1, 6)]

    async def scenario() -> None:
        await router.__aenter__()
        try:
            probe = workload.publication(0, data=event_data(0, ASYNC_OK_SYNC_FAILS))
            assert await workload.publish(probe) is not None, probe.failures
            kind = client.type(key)
            assert kind == "stream", (
                f"no dead-letter stream at {key} (it is {kind!r}; keys: {sorted(client.keys('*dead*'))}): "
                "update dead_letter_stream_key() in tests/fault_workload.py to the store's layout")
            client.rename(key, f"{key}:aside")  # the probe's dead letter, put back below
            client.set(key, "not a stream")
            for publication in broken:
                if await workload.publish(publication) is not None:
                    problems.append(f"publish of {publication.id} returned although its dead letter could not be "
                                    "written")
            await asyncio.sleep(1.0)  # long enough for workers to deliver whatever was stored
            leaked = sorted({(h.target, h.id) for h in workload.recorder.handled
                             if h.target != "direct" and h.id in {p.id for p in broken}})
            if leaked:
                problems.append(f"publishes that raised left async deliveries behind, and they were handled: {leaked}")
            client.delete(key)
            client.rename(f"{key}:aside", key)
            for publication in broken:
                receipt = await workload.publish(publication)
                if receipt is None:
                    problems.append(f"publishing {publication.id} again failed: {publication.failures[-1]}")
                elif receipt.duplicate:
                    problems.append(f"publishing {publication.id} again was a duplicate: the publish that raised "
                                    "left its idempotency key behind")
            await workload.settle()
        finally:
            await workload.stop()

    try:
        run_bounded(scenario())
    finally:
        client.close()
    problems += check_invariants(router, workload.outcome)
    assert not problems, "\n- ".join(["a publish that raised left something behind:", *problems])


def test_publish_that_raised_on_the_memory_store_remembers_nothing(tmp_path: Path) -> None:
    """On the default memory store, events whose data holds values that are not JSON (a set,
    an object): whatever publish does with them, a publish that raised must have remembered
    nothing, so the same id published again with good data is not a duplicate and is
    delivered (or dead-lettered) in full. The set goes to the sync target alone, whose handler
    fails: the dead letter is what cannot be encoded."""
    router = interlock.load(str(write_project(tmp_path)))
    workload = Workload(router)
    problems: list[str] = []
    cases = [
        workload.publication(0, "sync.run", {**event_data(0, {"direct": "fail"}), "blob": {1, 2}}),
        workload.publication(1, "sync.run", {**event_data(1, {"direct": "ok"}), "blob": {1, 2}}),
        workload.publication(2, "job.run", {**event_data(2, ASYNC_OK_SYNC_FAILS), "blob": object()}),
    ]

    async def scenario() -> None:
        await router.__aenter__()
        try:
            for publication in cases:
                bad = publication.data
                if await workload.publish(publication) is not None:
                    log.info("publish of %s with data that is not JSON returned", publication.id)
                    continue
                publication.data = {k: v for k, v in bad.items() if k != "blob"}
                receipt = await workload.publish(publication)
                if receipt is None:
                    problems.append(f"publishing {publication.id} again with good data failed: "
                                    f"{publication.failures[-1]}")
                elif receipt.duplicate:
                    problems.append(f"publishing {publication.id} again with good data was a duplicate: the publish "
                                    f"that raised ({publication.failures[0]}) remembered its id")
            await workload.settle()
        finally:
            await workload.stop()

    run_bounded(scenario())
    problems += check_invariants(router, workload.outcome)
    assert not problems, "\n- ".join(["a publish that raised left something behind:", *problems])


# ---- the shop example, default settings, two processes ------------------------------------------


# 100 events drain in 0.03 s on the memory store; 15 s is generous, and well below the 30 s a
# delivery waits before another consumer may claim it (which would hide a stall).
SHOP_DRAIN_TIMEOUT = 15.0


def _shop_events(count: int = 100) -> list[dict[str, Any]]:
    lines = (ROOT / "examples" / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:count]]


def _start_worker(url: str, project: Path, output: Path, stderr: Path) -> subprocess.Popen[str]:
    """The worker process of tests/fault_worker.py, once it says `ready` (within 20 s)."""
    with stderr.open("w") as errors:
        worker = subprocess.Popen([sys.executable, str(WORKER), url, str(project), str(output)],
                                  stdout=subprocess.PIPE, stderr=errors, text=True)
    assert worker.stdout is not None
    ready, _, _ = select.select([worker.stdout], [], [], 20)
    line = worker.stdout.readline().strip() if ready else ""
    if line != "ready":
        worker.kill()
        worker.wait(5)
        pytest.fail(f"the worker did not start (said {line!r}): {stderr.read_text()[-2000:]}")
    return worker


@pytest.fixture
def stopped_at_end() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes the test starts, terminated (then killed) when it ends."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        terminate(process)


def test_shop_example_with_default_settings_drains_across_processes(
        make_redis_server: MakeServer, tmp_path: Path, stopped_at_end: list[subprocess.Popen[str]]) -> None:
    """The shop example with every setting at its default, on Redis: a worker process handles
    every target, this process publishes 100 example events (and handles the sync target,
    which the publishing process calls). `drain` returns within 15 s (the memory store takes
    0.03 s) and every delivery was handled. No fault: the defaults alone must not stall."""
    server = make_redis_server()
    shop = ROOT / "examples" / "shop"
    output = tmp_path / "handled.tsv"
    stopped_at_end.append(_start_worker(server.url, shop, output, tmp_path / "worker.log"))
    router = interlock.load(str(shop), store=server.url)
    sync_targets = sorted(name for name, target in router.targets.items() if target["mode"] == "sync")
    recorder = Recorder().register(router, sync_targets)
    workload = Workload(router, recorder=recorder, drain_timeout=SHOP_DRAIN_TIMEOUT)
    events = _shop_events()
    for number, event in enumerate(events):
        workload.outcome.publications[event["id"]] = Publication(event["id"], number, event["type"], event["data"])

    async def scenario() -> None:
        await router.__aenter__()
        try:
            for publication in workload.outcome.publications.values():
                await workload.publish(publication)
            await workload.settle()
        finally:
            await workload.stop()

    run_bounded(scenario())
    for line in output.read_text().splitlines():
        target, event_id, attempt = line.split("\t")
        recorder.handled.append(Handled(target, event_id, None, -1, int(attempt), 0.0))
    problems = check_invariants(router, workload.outcome)
    log.info("shop: %d events, %d deliveries handled, drain %s", len(events), len(recorder.handled),
             workload.outcome.drain_seconds)
    assert not problems, "\n- ".join([f"the shop example on Redis (worker log: {tmp_path / 'worker.log'}):",
                                      *problems])


# ---- a password-protected server -----------------------------------------------------------------


class _Records(logging.Handler):
    """Every log record, formatted, exceptions included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def every_log_record() -> Iterator[_Records]:
    """A handler on the root logger at DEBUG for the test's duration."""
    root = logging.getLogger()
    handler, level = _Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_password_protected_server_down_and_back_never_shows_the_password(
        make_redis_server: MakeServer, tmp_path: Path, capfd: pytest.CaptureFixture[str],
        every_log_record: _Records) -> None:
    """A server with `requirepass` (and AOF) killed and started again 4 s later mid-stream:
    the workload survives it, and the password appears in no exception the router raised, no
    log record (root logger, DEBUG) and nothing written to stdout or stderr. (A router started
    on the same password and a port nobody listens on must raise too: its error is checked.)"""
    password = f"pw-{secrets.token_hex(12)}"
    server = make_redis_server(appendonly=True, password=password)
    router = _router(write_project(tmp_path), server)
    outcome = _run(router, Fault("SIGKILL, down 4 s, requirepass", lambda: server.down_for(4)))
    assert server.starts == 2, "the server was not restarted: the fault did not land"
    problems = check_invariants(router, outcome)
    unreachable = interlock.load(str(write_project(tmp_path)), store=f"redis://:{password}@127.0.0.1:{free_port()}/0")
    try:
        run_bounded(asyncio.wait_for(unreachable.__aenter__(), 30))
        problems.append("a router started on a port nobody listens on raised nothing")
    except Exception as exc:
        outcome.errors.append(exc)
    out, err = capfd.readouterr()
    places = {"exception texts": outcome.error_texts(), "log records": every_log_record.texts,
              "stdout": [out], "stderr": [err]}
    for place, texts in places.items():
        leaks = [text for text in texts if password in text]
        if leaks:
            problems.append(f"the password appears in {len(leaks)} of the {place}, e.g. "
                            f"{leaks[0].replace(password, '<PASSWORD>')[:300]!r}")
    assert not problems, "\n- ".join(["a password-protected server down and back:",
                                      *(p.replace(password, "<PASSWORD>") for p in problems)])
