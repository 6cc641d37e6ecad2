"""The one reader of a process: reads the streams of every target it delivers for, in
batches, and hands deliveries to the targets' pools.

Each round reads, for every target whose pool has room, up to that room from its streams
(an unordered target's stream; the partitions this process holds of an ordered one), without
waiting. When nothing came, it waits for new entries in one blocking read over all of them
(`block` seconds, one command), so an idle process sends next to nothing; when a pool is
full, it waits for room instead, reading the others only briefly.

Recovery: a read whose reply was lost may have taken deliveries that never arrived; they
are pending for this process's consumer but not in hand. Before reading a stream again
after a failed read, the reader claims them back, in stream order (on a partition this
process holds, whoever they are pending for: no one else may deliver them). Until then,
first attempts that a read brings from such a stream are left pending too (a read under
way may return later entries of a key whose earlier ones wait to be claimed back): they
are claimed back with the rest, in order. On a shared store it
also claims, every quarter of `claim_idle_ms`, deliveries that another process left pending
that long (it died). A stream whose consumer group was lost (a Redis restart) gets it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .inflight import GROUP, InHand
from .pool import TargetPool
from .store import EventStore, NoGroup, Record, StoreError

log = logging.getLogger(__name__)


class Reader:
    def __init__(self, store: EventStore, consumer: str, pools: dict[str, TargetPool],
                 plan: Callable[[], dict[str, list[str]]], accept: Callable[[str, list[Record], bool], None],
                 in_hand: InHand, room_freed: asyncio.Event, *, block: float, claim_idle_ms: dict[str, int],
                 exclusive: Callable[[str], bool], lost: Callable[[str], None]) -> None:
        self.store = store
        self.consumer = consumer
        self.pools = pools
        self.plan = plan  # per target, the streams to read now
        self.accept = accept  # takes records in hand and hands them to their pool (claimed or read)
        self.in_hand = in_hand
        self.room_freed = room_freed
        self.block = block
        self.claim_idle_ms = claim_idle_ms  # per unordered target on a shared store
        self.exclusive = exclusive  # whether a stream is read by this process alone (a partition it holds)
        self.lost = lost  # a stream whose group the store lost: forget what is in hand of it
        self.next_claim: dict[str, int] = {}
        self.reading: set[str] = set()
        self.recovering: set[str] = set()

    async def run(self) -> None:
        waited = False  # the last round was a blocking read that found nothing
        while True:
            plan = self.plan()
            await self._recover(plan)
            await self._claim_abandoned(plan)
            ready = {target: streams for target, streams in plan.items() if streams and self.pools[target].room()}
            if not ready:
                self.room_freed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.block):  # (wait_for may swallow a cancel on 3.11)
                        await self.room_freed.wait()
                continue
            if not waited:
                got = await asyncio.gather(*(self._read(streams, self.pools[target].room(), None,
                                                        self.pools[target]) for target, streams in ready.items()))
                if any(got):
                    continue
            full = len(ready) < sum(1 for streams in plan.values() if streams)
            # All but full pools: wait for entries (briefly when a full pool will want reading soon).
            everything = [stream for streams in ready.values() for stream in streams]
            count = min(self.pools[target].room() for target in ready)
            waited = not await self._read(everything, count, 0.05 if full else self.block)
            if full:
                waited = False

    async def _read(self, streams: list[str], count: int, block: float | None, pool: TargetPool | None = None) -> int:
        self.reading = set(streams)
        try:
            got = await self.store.read_many(streams, GROUP, self.consumer, count=max(count, 1), block=block)
        except NoGroup:
            await self.regroup(streams)
            return 0
        except StoreError:
            self.recovering.update(streams)  # the read may have taken deliveries it did not bring
            raise
        finally:
            self.reading = set()
        for stream, records in got.items():
            self.accept(stream, records, False)
        total = sum(len(records) for records in got.values())
        if pool is not None:
            pool.was_read(max(count, 1), total)
        return total

    async def regroup(self, streams: list[str]) -> None:
        """Consumer groups the store lost (a restart without persistence): made again, reading
        the stream from its start; what this process had in hand of those streams is gone
        from the store, and forgotten here too (keys waiting for a retry that is gone with it
        would otherwise stay held for good)."""
        for stream in streams:
            if await self.store.ensure_group(stream, GROUP):
                log.warning("the consumer group of %s was lost (a store restarted without its data?): "
                            "made again; what was in hand from it is forgotten", stream, extra={"stream": stream})
                self.recovering.discard(stream)
                self.lost(stream)

    async def _recover(self, plan: dict[str, list[str]]) -> None:
        """Deliveries pending for this consumer (any consumer, on a stream read by this process
        alone) that are not in hand: claimed back, in order."""
        for streams in plan.values():
            for stream in streams:
                if stream not in self.recovering:
                    continue
                try:
                    whose = None if self.exclusive(stream) else self.consumer
                    lost = sorted({p.id for p in await self.store.pending(stream, GROUP, consumer=whose)}
                                  - self.in_hand.ids(stream))
                except NoGroup:
                    await self.regroup([stream])
                    lost = []
                if lost:
                    records = await self.store.claim(stream, GROUP, self.consumer, min_idle_ms=0, ids=lost)
                    log.info("%d deliveries of %s taken back after a lost read", len(records), stream,
                             extra={"stream": stream})
                    self.accept(stream, sorted(records, key=lambda record: record.id), True)
                self.recovering.discard(stream)

    async def _claim_abandoned(self, plan: dict[str, list[str]]) -> None:
        now = self.store.now_ms()
        for target, idle_ms in self.claim_idle_ms.items():
            if target not in plan or now < self.next_claim.get(target, 0) or not self.pools[target].room():
                continue
            self.next_claim[target] = now + idle_ms // 4
            for stream in plan[target]:
                try:
                    records = await self.store.claim(stream, GROUP, self.consumer, min_idle_ms=idle_ms,
                                                     count=self.pools[target].room())
                except NoGroup:
                    await self.regroup([stream])
                    continue
                if records:
                    log.info("%d deliveries of %s claimed from an instance that left them pending", len(records),
                             stream, extra={"stream": stream, "target": target})
                    self.accept(stream, records, True)
