"""A target's pool: its read-ahead grows when the reads are what the handlers wait for, and
shrinks when deliveries wait too long to start (runtime/pool.py)."""

from __future__ import annotations

import asyncio

from interlock.runtime import pool as pool_module
from interlock.runtime.pool import TargetPool
from interlock.runtime.store import EntryId, Record


def _record(n: int) -> Record:
    return Record(EntryId(1, n), {"key": None, "delivery": f"d{n}"}, 1)


async def _fill(pool: TargetPool, first: int) -> int:
    """One read as the reader makes it: as many as there is room for, all there (more wait)."""
    room = pool.room()
    for n in range(first, first + room):
        pool.submit("s", _record(n))
    pool.was_read(room, room)
    return first + room


def test_read_ahead_grows_while_the_handlers_wait_for_reads() -> None:
    async def main() -> list[int]:
        async def nothing(_stream: str, _record: Record) -> None:
            return None

        pool = TargetPool("t", 8, False, nothing, asyncio.Event())
        capacities = []
        n = 0
        for _ in range(8):
            n = await _fill(pool, n)
            await asyncio.sleep(0.01)  # the workers run everything and find nothing left
            capacities.append(pool.capacity)
        return capacities

    capacities = asyncio.run(main())
    assert capacities[0] == 16 and capacities[-1] == pool_module.MAX_CAPACITY, capacities


def test_read_ahead_stays_while_reads_bring_less_than_asked() -> None:
    """A trickle (each read brings one event) is no reason to take more at once."""
    async def main() -> int:
        async def nothing(_stream: str, _record: Record) -> None:
            return None

        pool = TargetPool("t", 8, False, nothing, asyncio.Event())
        for n in range(20):
            room = pool.room()
            pool.submit("s", _record(n))
            pool.was_read(room, 1)
            await asyncio.sleep(0.001)
        return pool.capacity

    assert asyncio.run(main()) == 16


def test_read_ahead_shrinks_when_deliveries_wait_to_start() -> None:
    async def main() -> tuple[int, int]:
        async def slow(_stream: str, _record: Record) -> None:
            await asyncio.sleep(0.02)

        pool = TargetPool("t", 1, False, slow, asyncio.Event(), max_wait=0.05)
        pool.capacity = 256
        for n in range(12):
            pool.submit("s", _record(n))
        grown = pool.capacity
        while pool.queue or pool.running:
            await asyncio.sleep(0.01)
        return grown, pool.capacity

    grown, after = asyncio.run(main())
    assert grown == 256 and after < 256, after
