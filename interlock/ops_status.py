"""`interlock status`: what delivery is doing on a live store, per target and per dead letter.

Everything is read, nothing written, in a handful of round trips whatever the number of
targets and partitions: every stream's numbers in one call of the store's `stream_stats`
(on Redis, one read-only script per stream, pipelined), the ordered targets' memberships in
one call, their partitions' leases in one call per target. A dead letter shared by several
targets is read entry by entry to count each target's share (one XRANGE); a dead letter only
one target writes to is counted by its length.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import attrs

from interlock.runtime.dead_letters import dead_stream
from interlock.runtime.inflight import GROUP
from interlock.runtime.router import Router
from interlock.runtime.store import StreamStats

from .ops import dead_letter_names


@attrs.frozen
class TargetStatus:
    name: str
    mode: str  # "async" or "sync" (sync targets are called inside publish: nothing waits in the store)
    dead_letter: str | None  # where its failures go (None: `on_exhausted drop`, or none declared)
    dead_letters: int  # entries of that dead letter that are this target's
    ordered: bool = False
    streams: int = 0
    backlog: int = 0  # not yet read by any instance
    pending: int = 0  # read and not acknowledged
    in_retry: int = 0  # retries waiting in the delayed schedule
    oldest_ms: int | None = None  # the store time of the oldest delivery not yet done
    instances: tuple[str, ...] = ()  # ordered: the live members; else the consumers with pending deliveries
    holders: tuple[str | None, ...] | None = None  # ordered, on a shared store: the lease owner of each partition


@attrs.frozen
class Status:
    store: str  # the store's repr (its password hidden)
    at_ms: int
    partitions: int
    targets: tuple[TargetStatus, ...]
    dead_letters: dict[str, int]  # name -> depth


async def collect(router: Router) -> Status:
    """The status of every target and dead letter of the router's project, read now."""
    engine, store = router.engine, router.store
    asynchronous = [name for name in sorted(router.targets) if router.targets[name]["mode"] == "async"]
    streams = {name: engine.streams_of(name) for name in asynchronous}
    dead = dead_letter_names(router)
    everything = [s for name in asynchronous for s in streams[name]] + [dead_stream(d) for d in dead]
    # Ordered targets on a shared store are partitioned: a membership, a lease per partition.
    ordered = [name for name in asynchronous if store.shared and router.targets[name]["order_by"] is not None]
    stats, members, leases = await asyncio.gather(
        store.stream_stats(everything, GROUP),
        store.live_members([f"members.{name}" for name in ordered]),
        asyncio.gather(*(store.lease_holders(f"members.{name}", streams[name]) for name in ordered)))
    holders = dict(zip(ordered, leases, strict=True))
    depths = {d: stats[dead_stream(d)].length for d in dead}
    shares = await _dead_letter_shares(router, depths)
    now = store.now_ms()
    targets = []
    for name in sorted(router.targets):
        target = router.targets[name]
        dead_letter = target["dead_letter"] if target["on_exhausted"] != "drop" else None
        share = shares.get(dead_letter, collections.Counter())[name] if dead_letter else 0
        if name not in streams:
            targets.append(TargetStatus(name, "sync", dead_letter, share))
            continue
        own = [stats[s] for s in streams[name]]
        held = holders.get(name)
        targets.append(TargetStatus(
            name, "async", dead_letter, share, ordered=target["order_by"] is not None, streams=len(own),
            backlog=sum(s.unread for s in own), pending=sum(s.pending for s in own),
            in_retry=sum(s.scheduled for s in own), oldest_ms=_oldest(own),
            instances=tuple(members[f"members.{name}"]) if name in ordered else _consumers(own),
            holders=tuple(held[s] for s in streams[name]) if held is not None else None))
    return Status(repr(store), now, engine.partition_count, tuple(targets), depths)


def _oldest(stats: list[StreamStats]) -> int | None:
    oldest = [s.oldest.ms for s in stats if s.oldest is not None]
    return min(oldest) if oldest else None


def _consumers(stats: list[StreamStats]) -> tuple[str, ...]:
    return tuple(sorted({consumer for s in stats for consumer in s.consumers}))


async def _dead_letter_shares(router: Router, depths: dict[str, int]) -> dict[str, collections.Counter[str | None]]:
    """Per dead letter, how many of its entries each target (None: unrouted events) put there.
    A dead letter with one writer is all that writer's; the others are read."""
    writers: dict[str, set[str | None]] = collections.defaultdict(set)
    for name, target in router.targets.items():
        if target["dead_letter"] is not None and target["on_exhausted"] != "drop":
            writers[target["dead_letter"]].add(name)
    writers[router.engine.unrouted_dead_letter].add(None)
    shares: dict[str, collections.Counter[str | None]] = {}
    for dead, depth in depths.items():
        if len(writers[dead]) == 1:
            shares[dead] = collections.Counter({next(iter(writers[dead])): depth})
        elif depth:
            records = await router.store.range(dead_stream(dead))
            shares[dead] = collections.Counter(r.entry.get("target") for r in records)
    return shares


def status_json(status: Status) -> dict[str, Any]:
    """The status as `--format json` prints it; numbers a sync target cannot have are null."""
    targets: dict[str, Any] = {}
    for t in status.targets:
        synchronous = t.mode == "sync"
        targets[t.name] = {
            "mode": t.mode, "ordered": t.ordered, "streams": t.streams,
            "backlog": None if synchronous else t.backlog, "pending": None if synchronous else t.pending,
            "in_retry": None if synchronous else t.in_retry,
            "oldest_age_ms": None if t.oldest_ms is None else max(status.at_ms - t.oldest_ms, 0),
            "instances": list(t.instances), "partition_holders": None if t.holders is None else list(t.holders),
            "dead_letter": t.dead_letter, "dead_letters": t.dead_letters}
    return {"store": status.store, "at_ms": status.at_ms, "partitions": status.partitions, "targets": targets,
            "dead_letters": {name: {"depth": depth} for name, depth in sorted(status.dead_letters.items())}}
