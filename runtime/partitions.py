"""`order by` on a shared store: a target's deliveries are split by key over `partitions`
streams, each read by one process at a time, the holder of its lease.

Every process with a handler for the target beats in the target's membership; with the live
members sorted, partition p belongs to member p mod n. On taking a partition, its pending
deliveries are claimed first (they come before what is unread). A partition this process
should no longer hold (another came up, or this one is stopping) is handed over with care,
so that one key is never delivered by two processes at once, nor out of order: this process
finishes the deliveries it has read and their retries, leaves every new delivery pending,
and lets the lease go once none of its keys is left and no read of the partition is under
way; the next holder holds the keys of the retries left in the partition's schedule until
they come, and claims what was left pending first.

A lease not renewed in time may have gone to another process: its deliveries still waiting
here are left pending (`holds` says no), and the partition is forgotten once another holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .inflight import GROUP, InHand
from .pool import TargetPool
from .store import EventStore, Record

log = logging.getLogger(__name__)

#: The safety net looks for deliveries lost on the way every this many `lease_ms`.
AUDIT_LEASES = 6



class Partitions:
    def __init__(self, store: EventStore, consumer: str, target: str, streams: list[str], lease_ms: int,
                 pool: TargetPool, in_hand: InHand, stream_of: Callable[[Any], str],
                 accept: Callable[[str, list[Record], bool], None], adopt: Callable[[str], Awaitable[None]],
                 reading: Callable[[], set[str]], recovering: set[str]) -> None:
        self.store = store
        self.consumer = consumer
        self.target = target
        self.streams = streams
        self.lease_ms = lease_ms
        self.pool = pool
        self.in_hand = in_hand
        self.stream_of = stream_of
        self.accept = accept  # hands claimed records to the pool, taking them in hand
        self.adopt = adopt  # holds the keys whose retries wait in a stream's schedule
        self.reading = reading  # the streams a read under way is reading
        self.recovering = recovering  # streams to look for lost deliveries in before the next read
        self.group = f"members.{target}"  # its leases share the slot of its membership
        self.owned: list[str] = []
        self.leaving: set[str] = set()
        self.lease_until: dict[str, int] = {}
        self.stopping = False
        self.next_audit = 0

    # ---- what the reader and deliveries ask -------------------------------------------

    def readable(self) -> list[str]:
        """The partitions to read now: those surely held, but for those being handed over that
        have nothing of this process's left (no retry of theirs can come)."""
        now = self.store.now_ms()
        return [s for s in self.owned if self.holds(s, now) and (s not in self.leaving or self.started(s))]

    def keeps_new(self, stream: str) -> bool:
        """Whether new deliveries read from `stream` are delivered here (not while it is handed over)."""
        return stream not in self.leaving

    def holds(self, stream: str, now_ms: int) -> bool:
        """Whether the lease of `stream` is surely still this process's."""
        return now_ms < self.lease_until.get(stream, 0)

    def started(self, stream: str) -> bool:
        """Whether deliveries of the partition are in hand here, or keys of it wait for a retry."""
        return bool(self.in_hand.count(stream)) or self.pool.keys_in(self.stream_of, stream)

    # ---- the keeper ----------------------------------------------------------------------

    async def keep(self) -> None:
        """One round of the keeper (the engine runs it every third of `lease_ms`): a heartbeat
        in the membership, and every lease this process holds or wants renewed in one call."""
        if self.stopping:  # handing everything over: only keep the leases until then
            await self._renew(list(self.owned))
            await self._let_go()
            return
        members = await self.store.members(f"members.{self.target}", self.consumer, self.lease_ms)
        mine = members.index(self.consumer) if self.consumer in members else 0
        audit = self.store.now_ms() >= self.next_audit
        if audit:
            self.next_audit = self.store.now_ms() + AUDIT_LEASES * self.lease_ms
        wanted = []
        for number, stream in enumerate(self.streams):
            if number % max(len(members), 1) == mine:
                wanted.append(stream)
                if stream in self.leaving:  # given back while being handed over: what was
                    self.leaving.discard(stream)  # left pending for the next holder is ours
                    self.recovering.add(stream)
            elif stream in self.owned:
                self.leaving.add(stream)
        held = await self._renew([*wanted, *(s for s in self.owned if s not in wanted)])
        for stream, holds in held.items():
            if holds and stream not in self.owned:
                await self._take(stream)
            elif not holds and stream in self.owned:
                self._lost(stream)
            elif holds and audit and stream not in self.leaving and stream not in self.recovering and (
                    len(await self.store.pending(stream, GROUP)) > self.in_hand.count(stream)):
                # A safety net: more pending than in hand means deliveries were lost on the way
                # (a read's reply that never came back, a read by a holder whose lease lapsed).
                self.recovering.add(stream)
        await self._let_go()

    async def _take(self, stream: str) -> None:
        await self.store.ensure_group(stream, GROUP)
        # Keys whose retry the last holder scheduled come after that retry: held first.
        await self.adopt(stream)
        unfinished = len(await self.store.pending(stream, GROUP))
        taken = await self.store.claim(stream, GROUP, self.consumer, min_idle_ms=0,
                                       count=unfinished) if unfinished else []
        self.owned.append(stream)
        self.accept(stream, taken, True)
        log.info("partition %s taken (%d pending deliveries claimed)", stream, len(taken),
                 extra={"target": self.target, "stream": stream})

    async def _let_go(self) -> None:
        for stream in list(self.leaving):
            if stream in self.owned and not self.started(stream) and stream not in self.reading():
                self.owned.remove(stream)
                self.leaving.discard(stream)
                self.lease_until.pop(stream, None)
                await self.store.release(stream, self.consumer, group=self.group)
                log.info("partition %s handed over", stream, extra={"target": self.target, "stream": stream})

    async def _renew(self, streams: list[str]) -> dict[str, bool]:
        """Take or renew partitions' leases; per partition, whether this process holds it
        (and until when)."""
        asked = self.store.now_ms()
        held = await self.store.lease_many(self.group, streams, self.consumer, self.lease_ms)
        for stream, holds in zip(streams, held, strict=True):
            if holds:
                self.lease_until[stream] = asked + self.lease_ms
        return dict(zip(streams, held, strict=True))

    def _lost(self, stream: str) -> None:
        """This process stalled longer than the lease, and another took the partition over
        (claiming what was pending here): forget it entirely. A delivery already running
        finishes; its ack then finds it claimed by the new holder, at least once."""
        log.warning("partition %s lost: its lease ran out and another instance holds it", stream,
                    extra={"target": self.target, "stream": stream})
        self.owned.remove(stream)
        self.leaving.discard(stream)
        self.pool.forget(self.stream_of, stream)
        self.in_hand.forget(stream)
        self.recovering.discard(stream)
        self.lease_until.pop(stream, None)

    # ---- stopping ------------------------------------------------------------------------

    def hand_over(self) -> None:
        """Start handing every partition over (a stop): they go once their keys are done."""
        self.stopping = True
        self.leaving.update(self.owned)

    def done(self) -> bool:
        return not any(self.started(stream) for stream in self.owned)

    async def leave(self) -> None:
        """After stopping: out of the membership, every lease given up."""
        await self.store.members(f"members.{self.target}", self.consumer, 0)
        for stream in list(self.owned):
            await self.store.release(stream, self.consumer, group=self.group)
        self.owned.clear()
        self.leaving.clear()
