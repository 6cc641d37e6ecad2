"""End-to-end throughput of the shop example on Redis: one publishing process, one worker process.

Starts its own `redis-server` (no persistence, 127.0.0.1 only). Each round empties the
database and starts a worker subprocess: `examples/shop` with `store=<redis url>` and
default settings, a no-op handler for every async target, each counting its calls (and the
distinct event ids it saw, to tell redeliveries apart). After it is up (and `--settle`
seconds, default 2), this process loads the same project, registers no-op handlers for the
sync targets (a sync target is called by the process that publishes), and publishes the
events of `examples/events.jsonl`, cycled with fresh ids until `--events` (default 2000),
from `--publishers` concurrent tasks (default 64), then drains with a timeout (`--timeout`,
default 120 s; a drain that times out is reported as such). Measured from the first publish
to the end of the drain:

- events/s, and async deliveries/s (the deliveries the receipts promise to async targets);
- whether every delivery was handled: the worker's count against the receipts' async
  targets (and how many calls were repeats of an event and target already handled); while
  the drain waits, the worker's count is asked for every 0.25 s, so a drain that timed out
  says how many were handled after 1, 5, 10, 30, ... s and when the count last rose (a
  stall, or a crawl).

Medians over `--rounds` (default 3) rounds that finished; every round is listed too.
Only the public API is used, so the same script measures an older engine from its checkout:

    .venv/bin/python bench/redis_shop.py [--events N] [--rounds N] [--publishers N]
    cd /work/baseline && .venv/bin/python /work/main/bench/redis_shop.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis_server import engine_banner, flush, redis_server

import interlock

ROOT = Path(__file__).resolve().parent.parent
SHOP = str(ROOT / "examples" / "shop")
EVENTS = ROOT / "examples" / "events.jsonl"


# ---- the worker process ---------------------------------------------------------------------


async def worker(url: str) -> None:
    """No-op handlers for the async targets; answers `count` on stdin with its counts as JSON."""
    router = interlock.load(SHOP, store=url)
    calls: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()

    def counting(target: str) -> Any:
        async def handle(event: interlock.Event) -> None:
            calls[target] += 1
            seen.add((event.id, target))
        return handle

    for name, target in router.targets.items():
        if target["mode"] == "async":
            router.handler(name)(counting(name))
    async with router:
        print("ready", flush=True)
        while (await asyncio.to_thread(sys.stdin.readline)).strip() == "count":
            distinct = Counter(target for _id, target in seen)
            print(json.dumps({"calls": sum(calls.values()), "distinct": distinct}), flush=True)


# ---- the publishing process -----------------------------------------------------------------


@dataclass
class Round:
    events: int
    publish_seconds: float  # the publishes alone
    seconds: float  # publishes and drain
    expected: Counter[str]  # per async target, the deliveries promised by the receipts
    sync_calls: int
    errors: int  # receipts with errors (a sync target that failed)
    timed_out: bool
    progress: list[tuple[float, int]] = field(default_factory=list)  # (seconds since the first publish, calls)
    handled: int = 0  # calls in the worker
    distinct: Counter[str] | None = None  # per target, the distinct events among them


def shop_events(count: int, tag: str) -> list[tuple[str, dict[str, Any], str]]:
    """`count` events of examples/events.jsonl, cycled, each with an id of its own."""
    source = [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]
    return [(e["type"], e["data"], f"{e['id']}-{tag}-{n}") for n, e in ((n, source[n % len(source)])
                                                                         for n in range(count))]


async def watch_progress(handled: Callable[[], int], start: float, progress: list[tuple[float, int]]) -> None:
    """Every 0.25 s, the worker's count, with the seconds since `start`."""
    while True:
        count = await asyncio.to_thread(handled)
        progress.append((time.perf_counter() - start, count))
        await asyncio.sleep(0.25)


async def publish_all(url: str, count: int, publishers: int, timeout: float, tag: str,
                      handled: Callable[[], int]) -> Round:
    router = interlock.load(SHOP, store=url)
    sync_calls = 0

    async def sync_handler(event: interlock.Event) -> None:
        nonlocal sync_calls
        sync_calls += 1

    for name, target in router.targets.items():
        if target["mode"] == "sync":
            router.handler(name)(sync_handler)
    events = shop_events(count, tag)
    receipts: list[interlock.Receipt] = []

    async def publisher(first: int) -> None:
        for event_type, data, event_id in events[first::publishers]:
            receipts.append(await router.publish(event_type, data, id=event_id))

    async with router:
        start = time.perf_counter()
        await asyncio.gather(*(publisher(first) for first in range(publishers)))
        published = time.perf_counter() - start
        progress: list[tuple[float, int]] = []
        watcher = asyncio.create_task(watch_progress(handled, start, progress))
        timed_out = False
        try:
            await asyncio.wait_for(router.drain(), timeout)
        except TimeoutError:
            timed_out = True
        elapsed = time.perf_counter() - start
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    expected = Counter(t for r in receipts for t in r.targets if router.targets[t]["mode"] == "async")
    return Round(count, published, elapsed, expected, sync_calls, sum(1 for r in receipts if r.errors), timed_out,
                 progress)


def one_round(url: str, args: argparse.Namespace, number: int) -> Round:
    flush(url)
    process = subprocess.Popen([sys.executable, __file__, "--worker", url], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None

    def counts() -> dict[str, Any]:
        stdin.write("count\n")
        stdin.flush()
        return json.loads(stdout.readline())  # type: ignore[no-any-return]

    try:
        if stdout.readline().strip() != "ready":
            sys.exit("the worker did not start")
        time.sleep(args.settle)
        result = asyncio.run(publish_all(url, args.events, args.publishers, args.timeout, f"r{number}",
                                         lambda: int(counts()["calls"])))
        final = counts()
        result.handled, result.distinct = final["calls"], Counter(final["distinct"])
        return result
    finally:
        process.terminate()
        process.wait(30)


# ---- the report -----------------------------------------------------------------------------


def crawl(r: Round) -> str:
    """How many were handled after 1, 5, 10, 30, 60, 120 s, and when the count last rose."""
    at = [f"{next((n for t, n in r.progress if t >= mark), r.progress[-1][1]):,} at {mark} s"
          for mark in (1, 5, 10, 30, 60, 120) if mark <= r.seconds]
    rises = [t for (t, n), (_, before) in zip(r.progress[1:], r.progress, strict=False) if n != before]
    last = rises[-1] if rises else 0.0
    return f"DRAIN TIMED OUT (handled {', '.join(at)}; last rise at {last:.1f} s); "


def verdict(r: Round) -> str:
    distinct = r.distinct or Counter()
    expected, handled = r.expected.total(), distinct.total()
    state = crawl(r) if r.timed_out and r.progress else "DRAIN TIMED OUT; " if r.timed_out else ""
    if handled == expected and distinct == r.expected:
        state += "all handled"
    else:
        missing = ", ".join(f"{t} {r.expected[t] - distinct[t]}" for t in sorted(r.expected)
                            if r.expected[t] != distinct[t])
        state += f"{handled:,} of {expected:,} handled (missing: {missing})"
    repeats = r.handled - handled
    return state + (f", {repeats:,} repeated" if repeats else "") + (f", {r.errors} receipts with errors"
                                                                     if r.errors else "")


def report(rounds: list[Round], args: argparse.Namespace) -> None:
    print(f"\nexamples/shop on Redis, default settings: {args.events:,} events from examples/events.jsonl, "
          f"{args.publishers} concurrent publishers in one process, 1 worker process (no-op handlers):\n")
    print("| round | publish s | publish + drain s | events/s | async deliveries/s | async deliveries | sync calls "
          "| delivery |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for number, r in enumerate(rounds, 1):
        print(f"| {number} | {r.publish_seconds:.2f} | {r.seconds:.2f} | {r.events / r.seconds:,.0f} "
              f"| {r.expected.total() / r.seconds:,.0f} | {r.expected.total():,} | {r.sync_calls:,} | {verdict(r)} |")
    finished = [r for r in rounds if not r.timed_out]
    if finished:
        published = statistics.median(r.publish_seconds for r in finished)
        seconds = statistics.median(r.seconds for r in finished)
        events = statistics.median(r.events / r.seconds for r in finished)
        deliveries = statistics.median(r.expected.total() / r.seconds for r in finished)
        print(f"| median of {len(finished)} finished | {published:.2f} | {seconds:.2f} | {events:,.0f} "
              f"| {deliveries:,.0f} | | | |")
    else:
        print(f"| median | | - | - | - | | | no round finished within the {args.timeout:g} s drain timeout |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=64, help="concurrent publishing tasks")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds drain may take")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between the worker's start and the first "
                                                                  "publish")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker))
        return
    print(engine_banner(), flush=True)
    with redis_server() as url:
        rounds = [one_round(f"{url}/0", args, number) for number in range(1, args.rounds + 1)]
    report(rounds, args)


if __name__ == "__main__":
    main()
