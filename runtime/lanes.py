"""The memory store's fast path: a publish hands its first deliveries to the targets' pools
as Python objects, with no store call per step (no entry appended, read, decoded or
acknowledged); the store still takes the publish's idempotency key and its sync targets'
dead letters in one step, and everything after a first attempt (a retry, a dead letter, a
redrive) goes through the store as before.

It applies while delivery runs in this process, on a `MemoryStore` of its own (not shared,
no `max_unacked` bound: no backpressure to keep) and without retention of delivered entries
(`retain_delivered_ms` 0: nothing to replay), to targets without `order by`, while the
target's pool has room in its read-ahead (`takes`). A delivery on the fast path has an id of its
own, `EntryId(0, N)` (no stream entry has a time of 0), so that acknowledging it is only
counting it done. At stop, what the pools still hold of it (running, waiting, held behind a
busy key) is appended to its stream, in that order, and delivered when delivery starts
again, as the store path's pending entries would be.
"""

from __future__ import annotations

import itertools
from typing import Any

from .entry import pack
from .event import copy_of
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


def takes(pool: TargetPool | None, ordered: bool) -> bool:
    """Whether a target's first delivery takes the fast path: not for `order by` targets (a
    delivery waiting unread in the store, from before a start, would be overtaken), nor
    while its pool holds as many as it reads ahead (the rest waits in the store, lighter,
    and is read as room frees)."""
    return pool is not None and not ordered and len(pool.queue) < pool.capacity


def hand_over(pools: dict[str, TargetPool], deliveries: list[tuple[str, dict[str, Any]]], encoded: bytes) -> None:
    """Each delivery to its target's pool, with a copy of the event's data of its own (as
    the store path's decoding gives: a publisher changing its dict afterwards changes
    nothing delivered, nor does one handler for another)."""
    for stream, delivery in deliveries:
        delivery["event"] = copy_of(delivery["event"], encoded)
        pools[delivery["target"]].submit(stream, Record(EntryId(0, next(_numbers)), delivery, 1))


def held(pool: TargetPool) -> list[Item]:
    """The fast-path deliveries a pool holds: running, then waiting, then held behind a busy
    key (each key's in their order)."""
    items = [*pool.in_progress.values(), *pool.queue, *(item for waiting in pool.held.values() for item in waiting)]
    return [(stream, record) for stream, record in items if is_fast(record)]


def finished(record: Record) -> None:
    """A fast-path delivery is done with (acknowledged, retried or dead-lettered): not put back."""
    record.entry["finished"] = True


async def put_back(store: EventStore, items: list[Item]) -> None:
    """Deliveries the pools held at stop (taken when their tasks were cancelled, all at once),
    appended to their streams to be read at the next start, but those that finished while
    their cancellation arrived."""
    for stream, record in items:
        if not record.entry.get("finished"):
            await store.append(stream, pack(record.entry))
