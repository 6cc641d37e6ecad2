"""End-to-end throughput of the shop example on Redis: one publishing process, one worker process.

Starts its own `redis-server` (no persistence, 127.0.0.1 only). Each round empties the
database and starts two subprocesses, both `examples/shop` with `store=<redis url>` and
default settings:

- a worker: a no-op handler for every async target, each counting its calls (and the
  distinct event ids it saw, to tell redeliveries apart); it answers `count` on stdin;
- after the worker is up (and `--settle` seconds, default 2), a publisher: no-op handlers for
  the sync targets (a sync target is called by the process that publishes), the events of
  `examples/events.jsonl` cycled with fresh ids until `--events` (default 2000), published
  from `--publishers` concurrent tasks (default 64), then `drain`, given `--timeout`
  seconds (default 120).

Measured from the first publish to the end of the drain:

- events/s, and async deliveries/s (the deliveries the receipts promise to async targets);
- whether every delivery was handled: the worker's count against the receipts' async
  targets (and how many calls were repeats of an event and target already handled).

While the publisher runs, this process asks the worker for its count every 0.25 s, so a
drain that timed out says how many were handled after 1, 5, 10, 30, ... s and when the count
last rose (a stall, or a crawl). A drain that does not return at its timeout (one that does
not heed cancellation) is abandoned: the publisher reports at the timeout all the same, and
is killed if it has not exited 30 s later. Medians of the finished rounds of `--rounds`
(default 3); every round is listed.

Only the public API is used, so the same script measures an older engine from its checkout:

    .venv/bin/python bench/redis_shop.py [--events N] [--rounds N] [--publishers N] [--timeout S]
    cd /work/baseline && .venv/bin/python /work/main/bench/redis_shop.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from redis_server import engine_banner, flush, redis_server

import interlock

ROOT = Path(__file__).resolve().parent.parent
SHOP = str(ROOT / "examples" / "shop")
EVENTS = ROOT / "examples" / "events.jsonl"
RESULT = "RESULT "  # the prefix of the publisher's line of results
EXIT_GRACE = 30.0  # seconds a process may take to exit once asked to
PUBLISH_LIMIT = 120.0  # seconds the publishes may take (the drain has --timeout more)


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


def shop_events(count: int, tag: str) -> list[tuple[str, dict[str, Any], str]]:
    """`count` events of examples/events.jsonl, cycled, each with an id of its own."""
    source = [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]
    return [(e["type"], e["data"], f"{e['id']}-{tag}-{n}") for n, e in ((n, source[n % len(source)])
                                                                         for n in range(count))]


async def publish_all(url: str, count: int, publishers: int, timeout: float, tag: str) -> None:
    """Publish, drain, and print the results (as RESULT + JSON) as soon as the drain returned or
    timed out, before the router stops."""
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
        print("publishing", flush=True)
        start = time.perf_counter()
        await asyncio.gather(*(publisher(first) for first in range(publishers)))
        published = time.perf_counter() - start
        drain = asyncio.ensure_future(router.drain())
        done, _ = await asyncio.wait({drain}, timeout=timeout)  # returns at the timeout, whatever drain does
        elapsed = time.perf_counter() - start
        if done:
            drain.result()
        else:
            drain.cancel()
        expected = Counter(t for r in receipts for t in r.targets if router.targets[t]["mode"] == "async")
        print(RESULT + json.dumps({"events": count, "publish_seconds": published, "seconds": elapsed,
                                   "expected": expected, "sync_calls": sync_calls, "timed_out": not done,
                                   "errors": sum(1 for r in receipts if r.errors)}), flush=True)


# ---- one round, from this process -----------------------------------------------------------


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
    distinct: Counter[str] = field(default_factory=Counter)  # per target, the distinct events among them
    note: str = ""


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """The lines of `stream` as they come (read by a thread of their own); "" at its end."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


def ask_count(worker: subprocess.Popen[str]) -> dict[str, Any]:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write("count\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())  # type: ignore[no-any-return]


def stop(process: subprocess.Popen[str], how: str = "terminate") -> None:
    if process.poll() is None and how == "terminate":
        process.terminate()
    elif process.poll() is None:
        process.kill()
    try:
        process.wait(EXIT_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def follow(publisher: subprocess.Popen[str], worker: subprocess.Popen[str], limit: float) -> tuple[Any, list[Any]]:
    """Wait for the publisher's results (None if none came within `limit` seconds of its first
    publish), asking the worker for its count every 0.25 s meanwhile."""
    assert publisher.stdout is not None
    lines = lines_of(publisher.stdout)
    if lines.get(timeout=120).strip() != "publishing":
        sys.exit("the publisher did not start")
    begin = time.perf_counter()
    progress: list[tuple[float, int]] = []
    while time.perf_counter() - begin < limit:
        progress.append((time.perf_counter() - begin, int(ask_count(worker)["calls"])))
        try:
            line = lines.get(timeout=0.25)
        except queue.Empty:
            continue
        if line.startswith(RESULT):
            return json.loads(line.removeprefix(RESULT)), progress
        if not line:
            sys.exit(f"the publisher ended without results (exit {publisher.wait()})")
    return None, progress


def one_round(url: str, args: argparse.Namespace, number: int) -> Round:
    flush(url)
    worker = start("--worker", url)
    publisher: subprocess.Popen[str] | None = None
    try:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            sys.exit("the worker did not start")
        time.sleep(args.settle)
        publisher = start("--publisher", url, "--events", str(args.events), "--publishers", str(args.publishers),
                          "--timeout", str(args.timeout), "--tag", f"r{number}")
        result, progress = follow(publisher, worker, args.timeout + PUBLISH_LIMIT)
        if result is None:  # not even the publishes were done in time
            result = {"events": args.events, "publish_seconds": float("nan"), "seconds": args.timeout + PUBLISH_LIMIT,
                      "expected": {}, "sync_calls": 0, "timed_out": True, "errors": 0}
        final = ask_count(worker)
        round_ = Round(result["events"], result["publish_seconds"], result["seconds"], Counter(result["expected"]),
                       result["sync_calls"], result["errors"], result["timed_out"], progress, final["calls"],
                       Counter(final["distinct"]))
        if publisher.poll() is None:
            try:
                publisher.wait(EXIT_GRACE)
            except subprocess.TimeoutExpired:
                round_.note = f"; the publisher did not exit within {EXIT_GRACE:g} s of its results (killed)"
        return round_
    finally:
        if publisher is not None:
            stop(publisher, "kill")
        stop(worker)


# ---- the report -----------------------------------------------------------------------------


def crawl(r: Round) -> str:
    """How many were handled after 1, 5, 10, 30, 60, 120 s, and when the count last rose."""
    at = [f"{next((n for t, n in r.progress if t >= mark), r.progress[-1][1]):,} at {mark} s"
          for mark in (1, 5, 10, 30, 60, 120) if mark <= r.seconds]
    rises = [t for (t, n), (_, before) in zip(r.progress[1:], r.progress, strict=False) if n != before]
    last = rises[-1] if rises else 0.0
    return f"DRAIN TIMED OUT (handled {', '.join(at)}; last rise at {last:.1f} s); "


def verdict(r: Round) -> str:
    expected, handled = r.expected.total(), r.distinct.total()
    state = crawl(r) if r.timed_out and r.progress else "DRAIN TIMED OUT; " if r.timed_out else ""
    if handled == expected and r.distinct == r.expected:
        state += "all handled"
    else:
        missing = ", ".join(f"{t} {r.expected[t] - r.distinct[t]}" for t in sorted(r.expected)
                            if r.expected[t] != r.distinct[t])
        state += f"{handled:,} of {expected:,} handled (missing: {missing})"
    repeats = r.handled - handled
    return (state + (f", {repeats:,} repeated" if repeats else "")
            + (f", {r.errors} receipts with errors" if r.errors else "") + r.note)


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
    parser.add_argument("--publisher", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="r1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker))
        return
    if args.publisher:
        asyncio.run(publish_all(args.publisher, args.events, args.publishers, args.timeout, args.tag))
        os._exit(0)  # not waiting for a drain that ignored its cancellation, nor for its threads
    print(engine_banner(), flush=True)
    with redis_server() as url:
        rounds = [one_round(f"{url}/0", args, number) for number in range(1, args.rounds + 1)]
    report(rounds, args)


if __name__ == "__main__":
    main()
