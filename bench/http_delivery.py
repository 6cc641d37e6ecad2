"""Delivery to an HTTP target through `interlock serve`, side by side with a bare httpx client.

Starts a receiver (bench/http_receiver.py: it answers 200 at once and notes when each event
arrived) and sends it the same events, in one run, along each path:

- floor: bare `httpx.AsyncClient`s POST each event straight to the receiver exactly as
  interlock delivers it (the data as the body, the binary CloudEvent's `ce-*` headers,
  `Interlock-Attempt`, the target's header), `--concurrency` requests in flight;
- `interlock serve` on memory://, and on redis:// (a `redis-server` this script starts),
  each a subprocess serving a project whose one async HTTP target is the receiver (with
  `concurrency` `--target-concurrency`, default 16, the language's default): the same
  clients POST each event to the ingest (`POST /events`, a binary CloudEvent),
  `--concurrency` requests in flight, and interlock delivers it.

The clients hold at most 8 connections each (`--concurrency 64`: 8 clients): the pool of one
httpx client costs more per request the more connections it holds (httpcore 1.0: 64
connections cost several times the CPU of 8), and the load must not be what is measured.

Per path: events/s from the first post to the last arrival at the receiver; each event's
latency from the start of its post to its arrival at the receiver (p50, p99), and what the
router adds to it (the path's minus the floor's, round by round); the time to the answer
(the receiver's 200, the ingest's 202); the CPU of each process (% of one core). Then the
same paced at `--rate` events/s (a task per event, started when it is due): the latency
without saturation. Medians of `--rounds`; the paths alternate within each round. The client
runs in this process, so it shares the machine with what it measures, as a real one would.

    .venv/bin/python bench/http_delivery.py [--events N] [--concurrency C] [--target-concurrency N]
                                            [--rounds N] [--rate R] [--paced-events N] [--stores memory,redis]

(Not `bench/http.py`: a script's folder comes first on `sys.path`, and a file named `http.py`
there would shadow the standard library's `http` package for every script of bench/.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis_server import HOST, engine_banner, flush, free_port, percentile, start_server

HERE = Path(__file__).resolve().parent
CLIENT_CONNECTIONS = 8  # the most connections of one httpx client of the load generator
ARRIVAL_TIMEOUT = 120.0  # seconds to wait for the last event to arrive at the receiver
EVENT_TYPE = "bench.order"
SOURCE = "bench"
TIME = "2026-01-01T00:00:00Z"

PROJECT = """
event bench.order {{ id: string, n: int, amount: float, currency: string }}
dead_letter dlq
target receiver {{
  mode async
  http POST "{url}"
  headers {{ "X-Bench": "http" }}
  timeout 10s
  concurrency {concurrency}
  dead_letter dlq
}}
route all {{ on bench.order to receiver }}
"""

Headers = list[tuple[str, str]]
Post = Callable[[int, httpx.AsyncClient], Coroutine[Any, Any, None]]  # posts event number n with a client


def body(n: int) -> bytes:
    """An event's data as interlock sends it: compact JSON."""
    data = {"id": f"o-{n}", "n": n, "amount": 12.5, "currency": "EUR"}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def delivery_headers(event_id: str) -> Headers:
    """The headers of interlock's delivery of the event (runtime/http_target.py, binary mode)."""
    return [("X-Bench", "http"), ("Interlock-Attempt", "1"), ("ce-specversion", "1.0"), ("ce-id", event_id),
            ("ce-source", SOURCE), ("ce-type", EVENT_TYPE), ("ce-time", TIME), ("Content-Type", "application/json")]


def ingest_headers(event_id: str) -> Headers:
    """A binary CloudEvent posted to the ingest."""
    return [("ce-specversion", "1.0"), ("ce-id", event_id), ("ce-source", SOURCE), ("ce-type", EVENT_TYPE),
            ("ce-time", TIME), ("Content-Type", "application/json")]


# ---- processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process has used so far; nan where /proc cannot say."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen[Any], log: Path | None,
               timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            shown = log.read_text()[-3000:] if log is not None else ""
            sys.exit(f"{what} did not start (exit code {process.poll()}):\n{shown}")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def receiver() -> Iterator[tuple[str, int]]:
    """bench/http_receiver.py on a free port: its base URL and pid."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(HERE / "http_receiver.py"), str(port)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            sys.exit("the receiver did not start")
        yield f"http://{HOST}:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def serve(project: Path, store: str, folder: Path) -> Iterator[tuple[str, int]]:
    """`interlock serve PROJECT --store STORE` on a free port: its base URL and pid (its log in `folder`)."""
    port = free_port()
    log = folder / f"serve-{store.split(':')[0]}.log"
    command = [sys.executable, "-m", "interlock.cli", "serve", str(project), "--store", store, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: answers(f"{url}/readyz"), f"interlock serve --store {store}", process, log)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- one run of one path -------------------------------------------------------------------


@dataclass
class Side:
    """A path to the receiver: where to post, the headers of an event, the processes that work on it."""

    key: str  # in event ids: a word
    name: str
    url: str
    headers: Callable[[str], Headers]
    pids: dict[str, int]


@dataclass
class Sample:
    """One run of one path (times in seconds)."""

    events: int
    elapsed: float = float("nan")  # first post started to last arrival
    latencies: list[float] = field(default_factory=list)  # post started to arrival, per event
    answered: list[float] = field(default_factory=list)  # post started to its response
    errors: int = 0  # posts that failed or were not answered 2xx
    missing: int = 0  # events that never arrived
    repeated: int = 0  # arrivals beyond the first of an event
    cpu: dict[str, float] = field(default_factory=dict)  # process -> % of one core

    @property
    def rate(self) -> float:
        return self.events / self.elapsed


async def saturated(post: Post, count: int, concurrency: int, clients: list[httpx.AsyncClient]) -> None:
    """`count` posts, `concurrency` in flight: each worker takes the next number when its post is
    done, and posts with a client of its own (at most CLIENT_CONNECTIONS workers share one)."""
    numbers = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for n in numbers:  # one iterator shared by the workers: each number is posted once
            await post(n, client)

    await asyncio.gather(*(worker(clients[k % len(clients)]) for k in range(concurrency)))


async def paced(post: Post, count: int, rate: float, clients: list[httpx.AsyncClient]) -> None:
    """`count` posts at `rate` per second, each in a task of its own started when it is due."""
    start = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(n, clients[n % len(clients)])))
    await asyncio.gather(*tasks)


async def run(path: Side, receiver_url: str, count: int, concurrency: int, rate: float | None) -> Sample:
    """Post `count` events along `path` (saturated, or paced at `rate`) and collect their arrivals."""
    prefix = f"{path.key}-{uuid.uuid4().hex[:8]}-"
    sample = Sample(count)
    started: dict[str, float] = {}
    # `concurrency` connections over clients of CLIENT_CONNECTIONS each: one httpx client's pool
    # costs more per request the more connections it holds (see bench/README.md).
    limits = httpx.Limits(max_connections=CLIENT_CONNECTIONS, max_keepalive_connections=CLIENT_CONNECTIONS)
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=60))
                   for _ in range(-(-concurrency // CLIENT_CONNECTIONS))]
        control = await stack.enter_async_context(httpx.AsyncClient())
        await control.get(f"{receiver_url}/take")  # nothing left over from an earlier run

        async def post(n: int, client: httpx.AsyncClient) -> None:
            event_id = f"{prefix}{n}"
            start = started[event_id] = time.monotonic()
            try:
                response = await client.post(path.url, content=body(n), headers=path.headers(event_id))
            except httpx.HTTPError:
                sample.errors += 1
                return
            sample.answered.append(time.monotonic() - start)
            if not response.is_success:
                sample.errors += 1

        cpu_before = {name: cpu_seconds(pid) for name, pid in path.pids.items()}
        wall = time.monotonic()
        await (saturated(post, count, concurrency, clients) if rate is None else paced(post, count, rate, clients))
        deadline = time.monotonic() + ARRIVAL_TIMEOUT
        while (await control.get(f"{receiver_url}/count")).json()["count"] < count - sample.errors:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        wall = time.monotonic() - wall
        sample.cpu = {name: 100 * (cpu_seconds(pid) - cpu_before[name]) / wall for name, pid in path.pids.items()}
        arrivals: list[tuple[str, float]] = (await control.get(f"{receiver_url}/take")).json()["arrivals"]
    first: dict[str, float] = {}
    for event_id, at in arrivals:
        if event_id in first:
            sample.repeated += 1
        elif event_id in started:
            first[event_id] = at
    sample.missing = count - len(first)
    sample.latencies = [at - started[event_id] for event_id, at in first.items()]
    if first:
        sample.elapsed = max(first.values()) - min(started.values())
    return sample


# ---- the report ------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]  # without nan
    return statistics.median(values) if values else float("nan")


def trouble(samples: list[Sample]) -> str:
    """What went wrong in any round: failed posts, events that never arrived, repeats."""
    counts = Counter[str]()
    for sample in samples:
        counts.update(errors=sample.errors, missing=sample.missing, repeated=sample.repeated)
    said = [f"{counts[k]} {k}" for k in ("errors", "missing", "repeated") if counts[k]]
    return f"   ({', '.join(said)} over the rounds)" if said else ""


def report(title: str, paths: list[Side], results: dict[str, list[Sample]], throughput: bool) -> None:
    floor = results[paths[0].name]
    print(f"\n{title}")
    header = f"  {'path':<28}"
    if throughput:
        header += f"{'events/s':>10}{'vs floor':>10}"
    header += f"{'p50':>10}{'p99':>10}{'added p50':>11}{'added p99':>11}{'answer p50':>12}{'answer p99':>12}"
    header += "   CPU % of a core"
    print(header)
    for path in paths:
        samples = results[path.name]
        p50s = [percentile(s.latencies, 0.5) for s in samples]
        p99s = [percentile(s.latencies, 0.99) for s in samples]
        line = f"  {path.name:<28}"
        if throughput:
            rate = median([s.rate for s in samples])
            line += f"{rate:>10,.0f}{rate / median([s.rate for s in floor]):>9.2f}x"
        line += f"{ms(median(p50s)):>10}{ms(median(p99s)):>10}"
        if path is paths[0]:
            line += f"{'':>11}{'':>11}"
        else:  # the router's part: this path's latency minus the floor's, in the same round
            added50 = median([p - percentile(f.latencies, 0.5) for p, f in zip(p50s, floor, strict=True)])
            added99 = median([p - percentile(f.latencies, 0.99) for p, f in zip(p99s, floor, strict=True)])
            line += f"{'+' + ms(added50):>11}{'+' + ms(added99):>11}"
        line += f"{ms(median([percentile(s.answered, 0.5) for s in samples])):>12}"
        line += f"{ms(median([percentile(s.answered, 0.99) for s in samples])):>12}   "
        line += " ".join(f"{name} {median([s.cpu[name] for s in samples]):.0f}" for name in path.pids)
        print(line + trouble(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per run as fast as possible")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight from the client")
    parser.add_argument("--target-concurrency", type=int, default=16,
                        help="the HTTP target's `concurrency`: its deliveries in flight and its connections")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=250, help="events/s of the paced runs (0: none)")
    parser.add_argument("--paced-events", type=int, default=1000, help="events per paced run")
    parser.add_argument("--stores", default="memory,redis", help="the stores of `interlock serve`: memory, redis")
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    print(engine_banner())
    print(f"{os.cpu_count()} CPUs; the client in this process, the receiver and each `interlock serve` in their own; "
          f"the target's concurrency {args.target_concurrency}")
    folder = Path(tempfile.mkdtemp(prefix="interlock-http-bench-"))
    with ExitStack() as stack:
        receiver_url, receiver_pid = stack.enter_context(receiver())
        project = folder / "bench.route"
        project.write_text(PROJECT.format(url=f"{receiver_url}/events", concurrency=args.target_concurrency))
        client = {"client": os.getpid(), "receiver": receiver_pid}
        paths = [Side("floor", "bare httpx -> receiver", f"{receiver_url}/events", delivery_headers, client)]
        for store in stores:
            if store == "memory":
                url = "memory://"
            elif store == "redis":
                server, redis_url = start_server()
                stack.callback(server.wait, 10)
                stack.callback(server.terminate)
                url = f"{redis_url}/1"
                flush(url)
            else:
                sys.exit(f"--stores: {store!r} is not memory or redis")
            ingest, serve_pid = stack.enter_context(serve(project, url, folder))
            paths.append(Side(store, f"serve ({store}://) -> receiver", f"{ingest}/events", ingest_headers,
                               {**client, "serve": serve_pid}))

        for path in paths:  # connections opened, code warmed up: not measured
            asyncio.run(run(path, receiver_url, min(args.events, 200), args.concurrency, None))
        modes: list[tuple[str, int, float | None]] = [
            (f"as fast as possible: {args.events:,} events, {args.concurrency} posts in flight", args.events, None)]
        if args.rate > 0:
            modes.append((f"paced at {args.rate:,.0f} events/s: {args.paced_events:,} events", args.paced_events,
                          args.rate))
        for title, count, rate in modes:
            results: dict[str, list[Sample]] = {path.name: [] for path in paths}
            for _ in range(args.rounds):
                for path in paths:
                    results[path.name].append(asyncio.run(run(path, receiver_url, count, args.concurrency, rate)))
            report(f"{title} (medians of {args.rounds} rounds); latency = post started -> arrival at the receiver",
                   paths, results, throughput=rate is None)
    print(f"\nlogs of interlock serve: {folder}")


if __name__ == "__main__":
    main()
