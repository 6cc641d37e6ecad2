"""A worker process for tests/test_redis_delivery.py: delivers `work` from a shared Redis store.

Usage: python redis_worker.py URL PROJECT NAME SEED. Its handler fails one attempt in five
(a retryable error), takes a few milliseconds, and records each success in the Redis set
`test:acked`, a per-worker counter `test:count:NAME`, and, for events with a key `k`, the
list `test:order:K` of their `n` in the order they were handled. It runs until killed.
"""

from __future__ import annotations

import asyncio
import random
import sys

from redis_cluster import async_client_for

import interlock


async def main(url: str, project: str, name: str, seed: int) -> None:
    rng = random.Random(seed)
    client = async_client_for(url)
    router = interlock.load(project, store=url, claim_idle_ms=500, partitions=4, lease_ms=1000)

    async def work(event: interlock.Event) -> None:
        await asyncio.sleep(0.003)
        if rng.random() < 0.2:
            raise ConnectionError("flaky downstream")
        await client.sadd("test:acked", event.id)
        await client.incr(f"test:count:{name}")
        if "k" in event.data:
            await client.rpush(f"test:order:{event.data['k']}", event.data["n"])

    for target in router.targets:
        router.handler(target)(work)

    async with router:
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
