"""Publish-to-handler latency through Redis at a steady rate, side by side with bare redis-py loops.

Starts its own `redis-server` (no persistence, 127.0.0.1 only), then, in one process and one
run, paces events at `--rate` per second (default 1000) for `--seconds` (default 5) through:

- interlock: `router.publish` of each event (a task per event, started when it is due) to one
  async target (`sink` of bench/redis_delivery.py's project, concurrency 8) whose no-op handler
  is in the same process;
- bare redis-py, `XADD` per event: a task per event when it is due, on a client whose pool
  opens up to 100 connections (a burst waits for one beyond that);
- bare redis-py, pipelined: whenever the pacer wakes, the `XADD`s of every event then due in
  one pipeline on one connection (what interlock's shared round trips do, by hand);

each bare loop with a consumer task, on a client of its own, doing `XREADGROUP BLOCK 2000
COUNT 100` and one `XACK` per batch. Each event carries `time.perf_counter()` taken as its
publish (or XADD) call starts; the latency is the time from then to the handler being called
(the bare loops' "handler" is their loop over what XREADGROUP returned). Printed: p50, p90,
p99 and max of that latency, p50 and p99 of the publish call itself (start to return), and
how late the pacer started events (p99; about 1 ms is the sleep's grain, much more means
the process did not keep up), and the process's CPU (% of one core) while it published
and delivered. A publish that raised is counted, not retried. Medians over
`--rounds` (default 3); the three alternate within each round.

    .venv/bin/python bench/redis_latency.py [--rate N] [--seconds S] [--rounds N]
    cd /work/baseline && .venv/bin/python /work/main/bench/redis_latency.py   # an older engine

Throughput (as fast as possible) against the bare pipelined loop is bench/redis_delivery.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from redis_delivery import PROJECT
from redis_server import engine_banner, flush, percentile, redis_server

import interlock

DRAIN_TIMEOUT = 60.0
SendDue = Callable[[range], Awaitable[None]]  # sends the events numbered in the range, now due


@dataclass
class Sample:
    """One paced run: latencies to the handler, publish call times, pacer lateness (seconds)."""

    sent: int
    errors: list[str] = field(default_factory=list)  # publishes that raised
    latencies: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    timed_out: bool = False
    cpu: float = 0.0  # this process's CPU over wall time, from the first publish to the last delivery


class Clock:
    """This process's CPU time over wall time between `__init__` and `share()`."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def share(self) -> float:
        return (time.process_time() - self.cpu) / (time.perf_counter() - self.wall)


async def pace(rate: float, sample: Sample, send_due: SendDue) -> None:
    """Event n is due n / rate after the start: whenever the pacer wakes, `send_due` gets every
    event due by then (usually one), and the pacer sleeps until the next is due."""
    start = time.perf_counter()
    sent = 0
    while sent < sample.sent:
        now = time.perf_counter()
        due = min(sample.sent, int((now - start) * rate) + 1)
        if due > sent:
            sample.late.extend(max(0.0, now - (start + n / rate)) for n in range(sent, due))
            await send_due(range(sent, due))
            sent = due
        else:
            await asyncio.sleep(start + sent / rate - now)


class Tasks:
    """A `SendDue` that starts `send(n)` as a task of its own per event; `wait()` waits for them
    all. A send that raised is counted in the sample's errors."""

    def __init__(self, sample: Sample, send: Callable[[int], Coroutine[None, None, None]]) -> None:
        self.sample, self.send, self.tasks = sample, send, list[asyncio.Task[None]]()

    async def __call__(self, numbers: range) -> None:
        self.tasks.extend(asyncio.create_task(self.guarded(n)) for n in numbers)

    async def guarded(self, n: int) -> None:
        try:
            await self.send(n)
        except Exception as error:  # a bench counts it and goes on
            self.sample.errors.append(f"{type(error).__name__}: {error}")

    async def wait(self) -> None:
        await asyncio.gather(*self.tasks)


async def interlock_run(url: str, project: str, rate: float, seconds: float) -> Sample:
    flush(url)
    sample = Sample(int(rate * seconds))
    router = interlock.load(project, store=url)

    async def handle(event: interlock.Event) -> None:
        sample.latencies.append(time.perf_counter() - event.data["t0"])

    router.handler("sink")(handle)

    async def send(n: int) -> None:
        t0 = time.perf_counter()
        await router.publish("bench.run", {"n": n, "t0": t0})
        sample.calls.append(time.perf_counter() - t0)

    async with router:
        await asyncio.sleep(1.0)  # started and reading
        clock, tasks = Clock(), Tasks(sample, send)
        await pace(rate, sample, tasks)
        await tasks.wait()
        try:
            await asyncio.wait_for(router.drain(), DRAIN_TIMEOUT)
        except TimeoutError:
            sample.timed_out = True
        sample.cpu = clock.share()
    return sample


async def bare_run(url: str, rate: float, seconds: float, pipelined: bool) -> Sample:
    flush(url)
    sample = Sample(int(rate * seconds))
    client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=100))
    reader = aioredis.Redis.from_url(url)
    await reader.xgroup_create("bare", "g", "0", mkstream=True)
    published = asyncio.Event()

    async def consume() -> None:
        while not (published.is_set() and len(sample.latencies) >= sample.sent - len(sample.errors)):
            reply = await reader.xreadgroup("g", "c", {"bare": ">"}, count=100, block=2000)
            if not reply:
                continue
            rows = reply[0][1]
            for _id, fields in rows:  # the no-op handler, called
                sample.latencies.append(time.perf_counter() - float(fields[b"t0"]))
            await reader.xack("bare", "g", *(row[0] for row in rows))

    async def send(n: int) -> None:
        t0 = time.perf_counter()
        await client.xadd("bare", {"n": n, "t0": repr(t0)})
        sample.calls.append(time.perf_counter() - t0)

    async def send_pipelined(numbers: range) -> None:
        t0 = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for n in numbers:
            pipe.xadd("bare", {"n": n, "t0": repr(t0)})
        await pipe.execute()
        sample.calls.extend([time.perf_counter() - t0] * len(numbers))

    consumer = asyncio.create_task(consume())
    await client.ping()  # connected, as the router is once started
    await asyncio.sleep(1.0)
    clock = Clock()
    if pipelined:
        await pace(rate, sample, send_pipelined)
    else:
        tasks = Tasks(sample, send)
        await pace(rate, sample, tasks)
        await tasks.wait()
    published.set()
    try:
        await asyncio.wait_for(consumer, DRAIN_TIMEOUT)
    except TimeoutError:
        sample.timed_out = True
    sample.cpu = clock.share()
    await client.aclose()
    await reader.aclose()
    return sample


def summary(samples: list[Sample]) -> dict[str, float]:
    """Per figure, the median over the runs: times in ms, CPU in % of one core."""
    figures: dict[str, Callable[[Sample], float]] = {
        "p50": lambda s: percentile(s.latencies, 0.50), "p90": lambda s: percentile(s.latencies, 0.90),
        "p99": lambda s: percentile(s.latencies, 0.99), "max": lambda s: max(s.latencies, default=0.0),
        "call p50": lambda s: percentile(s.calls, 0.50), "call p99": lambda s: percentile(s.calls, 0.99),
        "late p99": lambda s: percentile(s.late, 0.99)}
    out = {name: 1000 * statistics.median(figure(s) for s in samples) for name, figure in figures.items()}
    return out | {"cpu": 100 * statistics.median(s.cpu for s in samples)}


def handled(samples: list[Sample]) -> str:
    def one(s: Sample) -> str:
        errors = f" ({len(s.errors)} errors: {s.errors[0]})" if s.errors else ""
        return f"{len(s.latencies):,}/{s.sent:,}{' (timed out)' if s.timed_out else ''}{errors}"

    counts = {one(s) for s in samples}
    return f"{len(samples)} x {counts.pop()}" if len(counts) == 1 else ", ".join(one(s) for s in samples)


def report(results: dict[str, list[Sample]], args: argparse.Namespace) -> None:
    print(f"\n{args.rate:g} events/s for {args.seconds:g} s to one async target, handler in the same process; "
          f"ms from the publish call's start to the handler (medians of {args.rounds} runs):\n")
    print("| | p50 | p90 | p99 | max | publish call p50 | publish call p99 | pacer late p99 | process CPU % "
          "| handled |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, samples in results.items():
        s = summary(samples)
        print(f"| {name} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['max']:.1f} | {s['call p50']:.2f} "
              f"| {s['call p99']:.2f} | {s['late p99']:.2f} | {s['cpu']:.0f} | {handled(samples)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(engine_banner(), flush=True)
    project = Path(tempfile.mkdtemp()) / "bench.route"
    project.write_text(PROJECT)
    results: dict[str, list[Sample]] = {"interlock": [], "bare redis-py, XADD per event (tasks, pooled)": [],
                                        "bare redis-py, XADDs due pipelined (one connection)": []}
    ours, pooled, pipelined = results.values()
    with redis_server() as url:
        for _ in range(args.rounds):
            ours.append(asyncio.run(interlock_run(f"{url}/2", str(project), args.rate, args.seconds)))
            pooled.append(asyncio.run(bare_run(f"{url}/1", args.rate, args.seconds, pipelined=False)))
            pipelined.append(asyncio.run(bare_run(f"{url}/1", args.rate, args.seconds, pipelined=True)))
    report(results, args)


if __name__ == "__main__":
    main()
