"""Delivery through Redis, side by side with the floor of that engine from Python.

Starts its own `redis-server` (no persistence) on a free loopback port, then, in one run:

- a bare redis-py loop: pipelined XADD of N entries, then XREADGROUP (100 at a time) and a
  pipelined XACK, with a no-op handler: what any Python consumer of Redis Streams pays;
- interlock on the same server: N publishes to one async target with a no-op handler, and
  a drain, in one process;
- the same N events published by one process and delivered by 1, then 2, worker processes;
- one publish awaited at a time (no worker) against one `XADD` awaited at a time on the
  store's own connection (the same client: its pipelined connection, runtime/redis_wire.py),
  alternating in rounds: the cost of a publish over the bare round trip it needs.

Run: `.venv/bin/python bench/redis_delivery.py [--events N] [--rounds N]`; an older engine from
its checkout: `cd /work/baseline && .venv/bin/python /work/main/bench/redis_delivery.py`.
Paced latency, side by side with a bare loop too, is bench/redis_latency.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis_server import engine_banner, start_server

import interlock

PROJECT = """
dead_letter dlq
target sink { mode async, dead_letter dlq, concurrency 8 }
route all { on bench.* to sink }
"""


async def bare(url: str, count: int, db: int) -> float:
    client = aioredis.Redis.from_url(f"{url}/{db}")
    await client.flushdb()
    await client.xgroup_create("bare", "g", "0", mkstream=True)
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd("bare", {"e": f'{{"n": {n}}}'})
        if n % 500 == 499:
            await pipe.execute()
    await pipe.execute()
    done = 0
    while done < count:
        reply = await client.xreadgroup("g", "c", {"bare": ">"}, count=100)
        rows = reply[0][1]
        for _row in rows:
            pass  # the no-op handler
        await client.xack("bare", "g", *(row[0] for row in rows))
        done += len(rows)
    elapsed = time.perf_counter() - start
    await client.aclose()
    return elapsed


async def ours(url: str, project: str, count: int, db: int, handlers: bool = True, publishers: int = 1) -> float:
    if handlers:  # with worker processes, the caller emptied the database before starting them
        cleanup = redis.Redis.from_url(f"{url}/{db}")
        cleanup.flushdb()
        cleanup.close()
    router = interlock.load(project, store=f"{url}/{db}")
    if handlers:
        async def nothing(event: interlock.Event) -> None:
            return None
        router.handler("sink")(nothing)
    async with router:
        async def publisher(first: int) -> None:
            for n in range(first, count, publishers):
                await router.publish("bench.run", {"n": n})

        start = time.perf_counter()
        await asyncio.gather(*(publisher(first) for first in range(publishers)))
        await router.drain()
        elapsed = time.perf_counter() - start
    await router.store.close()
    return elapsed


async def one_at_a_time(url: str, project: str, count: int, db: int, rounds: int) -> tuple[float, float]:
    """Median µs of one publish and of one bare XADD on the store's own connection, each
    awaited before the next (no worker running)."""
    cleanup = redis.Redis.from_url(f"{url}/{db}")
    cleanup.flushdb()
    cleanup.close()
    router = interlock.load(project, store=f"{url}/{db}")
    publishes, xadds = [], []
    async with router:
        batch = router.store._batch("bare")  # type: ignore[attr-defined]  # (the store's own connection: a bench's liberty)
        await router.publish("bench.run", {"n": -1})
        for _ in range(rounds):
            start = time.perf_counter()
            for n in range(count):
                await batch.call("XADD", "bare", "*", "e", f'{{"n": {n}}}')
            xadds.append((time.perf_counter() - start) / count * 1e6)
            start = time.perf_counter()
            for n in range(count):
                await router.publish("bench.run", {"n": n})
            publishes.append((time.perf_counter() - start) / count * 1e6)
    await router.store.close()
    return statistics.median(publishes), statistics.median(xadds)


def with_workers(url: str, project: str, count: int, workers: int, db: int, publishers: int) -> float:
    cleanup = redis.Redis.from_url(f"{url}/{db}")
    cleanup.flushdb()
    cleanup.close()
    processes = [subprocess.Popen([sys.executable, str(Path(__file__).parent / "redis_worker.py"), f"{url}/{db}",
                                   project], stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return asyncio.run(ours(url, project, count, db, handlers=False, publishers=publishers))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=64,
                        help="concurrent publishing tasks (a service handling that many requests at once)")
    args = parser.parse_args()
    print(engine_banner(), flush=True)
    server, url = start_server()
    folder = Path(tempfile.mkdtemp())
    project = folder / "bench.route"
    project.write_text(PROJECT)
    try:
        floor = statistics.median(asyncio.run(bare(url, args.events, 3)) for _ in range(args.rounds))
        one = statistics.median(asyncio.run(ours(url, str(project), args.events, 4)) for _ in range(args.rounds))
        many = statistics.median(asyncio.run(ours(url, str(project), args.events, 4, publishers=args.publishers))
                                 for _ in range(args.rounds))
        print(f"{args.events:,} events through Redis, no-op handler (medians of {args.rounds}):")
        print(f"  bare redis-py (pipelined XADD, XREADGROUP 100, XACK)       {args.events / floor:>9,.0f} events/s")
        print(f"  interlock in one process, publishes one at a time         {args.events / one:>9,.0f} events/s"
              f"   = {floor / one:.2f}x the bare loop")
        print(f"  interlock in one process, {args.publishers} concurrent publishers       "
              f"{args.events / many:>9,.0f} events/s   = {floor / many:.2f}x the bare loop")
        for workers in (1, 2):
            spent = statistics.median(with_workers(url, str(project), args.events, workers, 5, args.publishers)
                                      for _ in range(args.rounds))
            print(f"  one process publishing ({args.publishers} concurrent), {workers} worker process"
                  f"{'es' if workers > 1 else '  '}  {args.events / spent:>9,.0f} events/s")
        publish, xadd = asyncio.run(one_at_a_time(url, str(project), min(args.events, 3_000), 6, max(args.rounds, 5)))
        print(f"one publish at a time: {publish:.1f} µs; one XADD at a time on the store's connection: {xadd:.1f} µs "
              f"= {publish / xadd:.2f}x")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
