"""In-process delivery on the memory store, side by side with a bare asyncio.Queue worker pool.

Measured in one run, medians of several rounds:

- async throughput: publish N events to one async target with a no-op handler and drain,
  against N items through an `asyncio.Queue` drained by the same number of worker tasks
  calling the same no-op coroutine (the floor of in-process async delivery in Python);
- a sync publish to one no-op sync target, against one item's trip through that queue;
- publish-to-handler latency p50 / p99 under steady load (a publish every 0.2 ms);
- peak memory (tracemalloc) of 1,000,000 events through with retention on: delivered
  entries trimmed, a 1-second idempotency window (`--events` sets the count).

Run: `.venv/bin/python bench/delivery.py [--rounds N] [--events N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import interlock

PROJECT = """
dead_letter dlq
target sink { mode async, dead_letter dlq, concurrency 8 }
target answer { mode sync, timeout 1s }
route to_sink { on bench.async to sink }
route to_answer { on bench.sync to answer }
"""


def router(sink: Any = None, **options: Any) -> interlock.Router:
    """The bench project's router, its handlers no-ops unless `sink` is given."""
    folder = Path(tempfile.mkdtemp())
    (folder / "bench.route").write_text(PROJECT)
    r = interlock.load(str(folder / "bench.route"), **options)

    async def nothing(event: interlock.Event) -> None:
        return None

    async def answer(event: interlock.Event) -> int:
        return 1

    r.handler("sink")(sink or nothing)
    r.handler("answer")(answer)
    return r


async def bare_queue(count: int, workers: int = 8) -> float:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(item: dict[str, Any]) -> None:
        return None

    async def worker() -> None:
        while True:
            item = await queue.get()
            await handle(item)
            queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    start = time.perf_counter()
    for n in range(count):
        await queue.put({"n": n})
    await queue.join()
    elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    return elapsed


async def interlock_async(count: int) -> float:
    r = router()

    async with r:
        start = time.perf_counter()
        for n in range(count):
            await r.publish("bench.async", {"n": n})
        await r.drain()
        return time.perf_counter() - start


async def sync_publish(count: int) -> tuple[float, float]:
    r = router()

    async with r:
        start = time.perf_counter()
        for n in range(count):
            await r.publish("bench.sync", {"n": n})
        ours = (time.perf_counter() - start) / count
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def consume() -> None:
        while True:
            item = await queue.get()
            item["done"].set_result(1)

    task = asyncio.create_task(consume())
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    for n in range(count):
        done = loop.create_future()
        await queue.put({"n": n, "done": done})
        await done
    bare = (time.perf_counter() - start) / count
    task.cancel()
    return ours, bare


async def latency(count: int) -> tuple[float, float]:
    sent: dict[str, float] = {}
    seen: list[float] = []

    async def sink(event: interlock.Event) -> None:
        seen.append(time.perf_counter() - sent[event.id])

    r = router(sink)

    async with r:
        for n in range(count):
            sent[f"l{n}"] = time.perf_counter()
            await r.publish("bench.async", {"n": n}, id=f"l{n}")
            await asyncio.sleep(0.0002)
        await r.drain()
    ordered = sorted(seen)
    return ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000


async def memory(count: int) -> tuple[float, float, int]:
    r = router(idempotency_window_ms=1000, retain_delivered_ms=0)

    tracemalloc.start()
    start = time.perf_counter()
    async with r:
        for n in range(count):
            await r.publish("bench.async", {"n": n})
            if n % 10_000 == 9_999:
                await r.drain()
        await r.drain()
        left = await r.store.length("deliveries.sink")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return time.perf_counter() - start, peak / 2**20, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=20_000, help="events per throughput round")
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the memory run")
    args = parser.parse_args()
    gc.collect()
    bare_times, ours_times = [], []
    for _ in range(args.rounds):
        bare_times.append(asyncio.run(bare_queue(args.count)))
        ours_times.append(asyncio.run(interlock_async(args.count)))
    bare, ours = statistics.median(bare_times), statistics.median(ours_times)
    print(f"async delivery, {args.count:,} events, no-op handler, 8 workers (median of {args.rounds}):")
    print(f"  bare asyncio.Queue pool   {args.count / bare:>10,.0f} events/s")
    print(f"  interlock (memory store)  {args.count / ours:>10,.0f} events/s   = {bare / ours:.2f}x the bare pool")
    pairs = [asyncio.run(sync_publish(5_000)) for _ in range(args.rounds)]
    sync_ours = statistics.median(p[0] for p in pairs) * 1e6
    sync_bare = statistics.median(p[1] for p in pairs) * 1e6
    print(f"sync publish to one no-op target: {sync_ours:.1f} µs; one trip through a bare queue: {sync_bare:.1f} µs "
          f"= {sync_ours / sync_bare:.1f}x")
    p50, p99 = asyncio.run(latency(5_000))
    print(f"publish-to-handler latency under steady load: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    seconds, peak, left = asyncio.run(memory(args.events))
    print(f"{args.events:,} events with retention on: {seconds:.1f} s, peak traced memory {peak:.1f} MiB, "
          f"{left} delivery entries left in the store")


if __name__ == "__main__":
    main()
