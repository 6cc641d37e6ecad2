"""A worker process for bench/redis_delivery.py: no-op handlers for every target, until terminated."""

from __future__ import annotations

import asyncio
import sys

import interlock


async def main(url: str, project: str) -> None:
    router = interlock.load(project, store=url)

    async def nothing(event: interlock.Event) -> None:
        return None

    for target in router.targets:
        router.handler(target)(nothing)
    async with router:
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
