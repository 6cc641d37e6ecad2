"""The memory store's fast path: a publish hands its first deliveries to the targets' pools
as Python objects, with no store call per step (no entry appended, read, decoded or
acknowledged); the store still takes the publish's idempotency key and its sync targets'
dead letters in one step, and everything after a first attempt (a retry, a dead letter, a
redrive) goes through the store as before.

It applies while delivery runs in this process, on a `MemoryStore` of its own (not shared,
no `max_unacked` bound: no backpressure to keep) and without retention of delivered entries
(`retain_delivered_ms` 0: nothing to replay). A delivery on the fast path has an id of its
own, `EntryId(0, N)` (no stream entry has a time of 0), so that acknowledging it is only
counting it done. At stop, what the pools still hold of it (running, waiting, held behind a
busy key) is appended to its stream, in that order, and delivered when delivery starts
again, as the store path's pending entries would be.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from .entry import pack
from .event import Event, trusted_event
from .memory_store import MemoryStore
from .pool import Item, TargetPool
from .store import EntryId, EventStore, Record

_numbers = itertools.count(1)


def applies(store: EventStore, running: bool, retain_delivered_ms: int) -> bool:
    """Whether a publish's first deliveries take the fast path now."""
    return (running and type(store) is MemoryStore and store.max_unacked is None
            and not retain_delivered_ms)


def is_fast(record: Record) -> bool:
    """Whether the delivery came by the fast path (it has no entry in a stream)."""
    return record.id.ms == 0


def hand_over(pools: dict[str, TargetPool], deliveries: list[tuple[str, dict[str, Any]]], encoded: bytes) -> bool:
    """Each delivery to its target's pool, with a copy of the event's data of its own (as
    the store path's decoding gives: a publisher changing its dict afterwards changes
    nothing delivered, nor does one handler for another). True when a pool now holds more
    than its read-ahead waiting: the publisher should let the handlers run (a publish on
    this path never waits otherwise, and what waits in a pool costs memory)."""
    full = False
    for stream, delivery in deliveries:
        ev: Event = delivery["event"]
        delivery["event"] = trusted_event(ev.type, orjson.loads(encoded), ev.id, None, ev.time, 1, ev.source,
                                          dict(ev.extensions))
        pool = pools[delivery["target"]]
        pool.submit(stream, Record(EntryId(0, next(_numbers)), delivery, 1))
        full = full or len(pool.queue) > pool.capacity
    return full


def held(pool: TargetPool) -> list[Item]:
    """The fast-path deliveries a pool holds: running, then waiting, then held behind a busy
    key (each key's in their order)."""
    items = [*pool.in_progress.values(), *pool.queue, *(item for waiting in pool.held.values() for item in waiting)]
    return [(stream, record) for stream, record in items if is_fast(record)]


async def put_back(store: EventStore, items: list[Item]) -> None:
    """Deliveries the pools held at stop, appended to their streams, to be read at the next start."""
    for stream, record in items:
        await store.append(stream, pack(record.entry))
