"""Delivery: publish, handlers, retries, dead letters, ordering, idempotency — on any event
store. The engine wires the parts, each in a module of its own:

- publishing (here): `publish` builds the `Event` (refusing a bad type, data that is not
  JSON through and through or is larger than the store takes (runtime/event_data.py), or
  data that breaks a declared schema, before anything is stored or called), asks the router
  which targets it reaches, calls the **sync** targets' handlers, then stores, in one step
  of the store, a delivery entry per **async** target (`deliveries.TARGET`), the sync
  targets' dead letters, and the event's idempotency key (runtime/store.py: `append_all`).
  A publish that raised can be retried as it is: a target that has the event already does
  not get it again (sync handlers may be called again: at least once). No target: the event
  goes to the unrouted dead letter.
- reading (runtime/reader.py): one reader per process reads every stream it delivers for,
  in batches, and hands deliveries to per-target pools (runtime/pool.py) bounded by
  `concurrency`, which keep `order by` keys one at a time.
- attempts (runtime/attempt.py): the handler, then an acknowledgement, a retry scheduled, or
  a dead letter; acknowledgements batched (runtime/acks.py).
- retries (runtime/scheduler.py): released when due, not polled.
- partitions (runtime/partitions.py): `order by` across processes on a shared store.
- supervision (runtime/supervisor.py): every long-lived task is restarted when it fails, and
  what cannot be cured reaches the caller at the next `publish` or `drain`.

`drain` returns when every delivery accepted so far has been acked or dead-lettered.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import json
import logging
import os
import random
import zlib
from collections.abc import Callable
from typing import Any

import attrs
import orjson

from . import lanes
from .acks import Acker
from .attempt import Deliverer
from .dead_letters import dead_entry, dead_stream, read_dead_letters
from .entry import delivery_entry, pack, unpack
from .event import (
    SOURCE,
    Event,
    EventError,
    check_extensions,
    check_time,
    check_type,
    copy_of,
    new_id,
    now_text,
    shown,
    trusted_event,
)
from .event_data import encode_data
from .handlers import H, Handlers, cancelling, failure
from .inflight import GROUP, InHand, Outstanding, claim_idle_of
from .outcomes import Attempt, DeadLetter, DeliveryError, Receipt
from .partitions import Partitions
from .pool import MAX_WAIT, TargetPool
from .reader import Reader
from .retry import decide
from .scheduler import Scheduler
from .schema import validate
from .store import Entry, EntryId, EventStore, Packed, Record, StoreError
from .supervisor import Supervisor
from .telemetry import Gauges, Telemetry, watch
from .transform import delivered, key_of

log = logging.getLogger(__name__)
OUTSTANDING_TIMEOUT = 2.0  # seconds a timed-out drain may spend asking what is outstanding

Routes = dict[str, list[tuple[str, dict[str, Any] | None]]]  # per target: (route, transform) in order


class Engine:
    """The delivery side of a router, bound to one store. `deliveries(type, data)` is the
    routing decision: per target the event reaches, its routes and their transforms."""

    def __init__(self, artifact: dict[str, Any], deliveries: Callable[[str, Any], Routes], store: EventStore, *,
                 idempotency_window_ms: int = 24 * 3600 * 1000, publish_timeout: float | None = None,
                 seed: int | None = None, retain_delivered_ms: int = 0, housekeeping_ms: int = 10_000,
                 claim_idle_ms: int = 30_000, partitions: int = 16, lease_ms: int = 10_000,
                 read_block: float = 2.0, deliver_http: bool = True) -> None:
        self.artifact = artifact
        self.routing = deliveries
        self.store = store
        self.targets: dict[str, dict[str, Any]] = artifact["targets"]
        self.schemas: dict[str, Any] = artifact["events"]
        self.unrouted_dead_letter: str = artifact.get("unrouted") or "unrouted"
        self.handlers = Handlers(self.targets, deliver_http)
        self.telemetry = Telemetry(frozenset(artifact["events"]))
        self.gauges = Gauges()
        self.gauge_interval = min(housekeeping_ms, 10_000) / 1000
        self.idempotency_window_ms = idempotency_window_ms
        self.publish_timeout = publish_timeout
        # Retention: acknowledged deliveries are kept this long (for replay), then trimmed;
        # dead letters for their `retain` (kept forever without one).
        self.retain_delivered_ms = retain_delivered_ms
        self.housekeeping_ms = housekeeping_ms
        # On a shared store, deliveries pending this long with a consumer (a crashed process)
        # are taken over; never less than twice a target's timeout, so live work is not stolen.
        self.claim_idle_ms = claim_idle_ms
        self.partition_count = partitions
        self.lease_ms = lease_ms
        self.read_block = read_block
        self.random = random.Random(seed).random
        self.consumer = f"{os.getpid()}-{id(self):x}"
        self.groups_ready = False
        self.running = False
        self.in_hand = InHand()
        self.outstanding = Outstanding()
        self.supervisor = Supervisor()
        self.pools: dict[str, TargetPool] = {}
        self.partitions: dict[str, Partitions] = {}
        self.reader: Reader | None = None
        self.acker = Acker(store)
        self.scheduler = Scheduler(store, self._sweep_streams, self.housekeeping, housekeeping_ms)
        self.sweeps = 0
        self.acked: set[str] = set()  # streams with deliveries acknowledged since the last trim
        self.deliverer: Deliverer | None = None
        # Per event id with sync targets: a lock its publishes take turns on, and how many want it.
        self._publishing: dict[str, list[Any]] = {}
        # The target of each delivery stream (entries do not name theirs: runtime/entry.py).
        self.target_of = {stream: name for name in self._async_targets() for stream in self.streams_of(name)}

    # ---- streams -------------------------------------------------------------------

    def _partitioned(self, target: str) -> bool:
        return self.store.shared and self.targets[target]["order_by"] is not None

    def stream_for(self, target: str, key: Any) -> str:
        """The stream a delivery of `target` with ordering key `key` goes to."""
        if not self._partitioned(target):
            return f"deliveries.{target}"
        part = zlib.crc32(json.dumps(key, sort_keys=True).encode()) % self.partition_count
        return f"deliveries.{target}.p{part}"

    def streams_of(self, target: str) -> list[str]:
        if not self._partitioned(target):
            return [f"deliveries.{target}"]
        return [f"deliveries.{target}.p{part}" for part in range(self.partition_count)]

    def _async_targets(self) -> list[str]:
        return [name for name, target in self.targets.items() if target["mode"] == "async"]

    def _sweep_streams(self, everything: bool) -> list[str]:
        """The streams a sweep of the scheduler looks at for retries this process did not
        schedule: unordered targets' streams every sweep; the partitions it holds every sixth
        (it adopted their retries when it took them; this finds one a last holder's delivery,
        still running then, scheduled after)."""
        self.sweeps += 1
        every = everything or self.sweeps % 6 == 0
        return [stream for name, streams in self._plan().items() if every or name not in self.partitions
                for stream in streams]

    def _plan(self) -> dict[str, list[str]]:
        """Per target this process delivers for, the streams to read now."""
        plan = {}
        for name in self.pools:
            partitions = self.partitions.get(name)
            plan[name] = partitions.readable() if partitions is not None else self.streams_of(name)
        return plan

    async def _ensure_groups(self) -> None:
        """Every async target's consumer group, so that nothing published is invisible to them."""
        if not self.groups_ready:
            for name in self._async_targets():
                for stream in self.streams_of(name):
                    await self.store.ensure_group(stream, GROUP)
            self.groups_ready = True

    # ---- setup -------------------------------------------------------------------

    def handler(self, target: str) -> Callable[[H], H]:
        return self.handlers.register(target)

    def healthy(self) -> bool:
        """Whether delivery is running with every background task alive."""
        return self.running and self.supervisor.alive()

    async def start(self) -> None:
        if self.running:
            raise DeliveryError("delivery is already running: `async with router:` is entered once at a time")
        routed = {d["target"] for r in self.artifact["dispatch"]["routes"]
                  for arm in ([r] if r["kind"] == "route" else r["branches"]) for d in arm["deliveries"]}
        self.handlers.prepare()  # an HTTP target's `env(...)` that is not set: said now, not at each delivery
        missing = sorted(t for t in routed if t not in self.handlers)
        if missing and not self.store.shared:
            raise DeliveryError("no handler for routed target(s) " + ", ".join(f"`{t}`" for t in missing) +
                                ": register one with @router.handler(NAME) before starting")
        # On a shared store, other processes deliver for the targets this one has no handler for.
        await self._ensure_groups()
        self.in_hand.clear()  # what an earlier run had in hand is pending in the store
        # Events are bound to the loop that first waits on them: each run makes its own.
        self.acker.wake = asyncio.Event()
        self.scheduler.wake = asyncio.Event()
        self.outstanding.rebind()
        room_freed = asyncio.Event()
        self.pools, self.partitions = {}, {}
        self.deliverer = Deliverer(
            store=self.store, targets=self.targets, handlers=self.handlers, acker=self.acker,
            scheduler=self.scheduler, pools=self.pools, partitions=self.partitions, in_hand=self.in_hand,
            outstanding=self.outstanding, supervisor=self.supervisor, random=self.random,
            idempotency_window_ms=self.idempotency_window_ms, claim_idle_ms=self.claim_idle_ms, acked=self.acked,
            telemetry=self.telemetry)
        claim_idle: dict[str, int] = {}
        for name in self._async_targets():
            if name not in self.handlers:
                continue
            target = self.targets[name]
            # (on a shared store, what waits here must start well before another instance may claim it)
            max_wait = min(MAX_WAIT, claim_idle_of(self.claim_idle_ms, target) / 4000) if (
                self.store.shared) else MAX_WAIT
            self.pools[name] = TargetPool(name, target["concurrency"], target["order_by"] is not None,
                                          self.deliverer.deliver, room_freed, max_wait)
            if self._partitioned(name):
                self.partitions[name] = Partitions(
                    self.store, self.consumer, name, self.streams_of(name), self.lease_ms, self.pools[name],
                    self.in_hand, functools.partial(self.stream_for, name), self._accept, self._adopt,
                    self._reading, set())
            elif self.store.shared:
                claim_idle[name] = claim_idle_of(self.claim_idle_ms, target)
        partition_streams = {stream for p in self.partitions.values() for stream in p.streams}
        self.reader = Reader(self.store, self.consumer, self.pools, self._plan, self._accept, self.in_hand,
                             room_freed, block=self.read_block, claim_idle_ms=claim_idle,
                             exclusive=partition_streams.__contains__, lost=self._lost)
        for partitions in self.partitions.values():
            partitions.recovering = self.reader.recovering
        if not self.store.shared:
            # Deliveries an earlier run of this router read and did not finish (it was stopped
            # in between) are this process's alone: they come first.
            for name in self.pools:
                stream = f"deliveries.{name}"
                await self._adopt(stream)
                if unfinished := len(await self.store.pending(stream, GROUP)):
                    self._accept(stream, await self.store.claim(stream, GROUP, self.consumer, min_idle_ms=0,
                                                                count=unfinished), True)
        self.running = self.deliverer.running = True
        supervisor = self.supervisor
        supervisor.start("reader", self.reader.run)
        supervisor.start("acknowledgements", self.acker.run)
        supervisor.start("retries", self.scheduler.run)
        if self.telemetry.active():
            watch(self.gauges)
            supervisor.start("gauges", self._read_gauges)
        for name, partitions in self.partitions.items():
            supervisor.start(f"partitions of {name}", functools.partial(self._keep, partitions))
        log.info("delivering for %s (consumer %s, store %r)", ", ".join(self.pools) or "no target", self.consumer,
                 self.store)

    async def _adopt(self, stream: str) -> None:
        """Retries waiting in a stream's schedule that this process did not schedule (another
        holder's, or an earlier run's): their keys are held until they come, so that no later
        delivery of those keys goes first; the scheduler wakes when the first is due."""
        target = self.target_of[stream]
        for due, _, packed in await self.store.scheduled(stream):
            entry = unpack(packed, target)
            pool = self.pools.get(target)
            if pool is not None and pool.ordered and entry["key"] is not None:
                pool.busy.setdefault(entry["key"], entry["delivery"])
            self.scheduler.scheduled(stream, due)

    def _lost(self, stream: str) -> None:
        """The store lost the stream's group, and so what this process had in hand of it."""
        self.in_hand.forget(stream)
        for name, pool in self.pools.items():
            if stream in self.streams_of(name):
                pool.forget(functools.partial(self.stream_for, name), stream)

    def _reading(self) -> set[str]:
        return self.reader.reading if self.reader is not None else set()

    def _accept(self, stream: str, records: list[Record], claimed: bool = False) -> None:
        """Read (or claimed) records, into their pools (each taken in hand first)."""
        now = self.store.now_ms()
        recovering = not claimed and self.reader is not None and stream in self.reader.recovering
        target = self.target_of[stream]
        partitions = self.partitions.get(target)
        pool = self.pools[target]
        for record in records:
            try:
                record = Record(record.id, unpack(record.entry, target), record.deliveries)
            except Exception as exc:  # not a delivery (another writer's, or damaged): the others go on
                log.error("entry %s of %s is not a delivery (%s: %s); it stays pending there", record.id, stream,
                          type(exc).__name__, exc, extra={"stream": stream})
                continue
            if record.entry["attempt"] == 1 and (recovering or (
                    partitions is not None and not partitions.keeps_new(stream))):
                # Handed over: left pending for the next holder, which claims it first. Or the
                # stream has deliveries to claim back first: this one is claimed back with them.
                continue
            if self.in_hand.read_at(stream, record.id) is not None:
                continue  # already here (claimed again while it runs)
            self.in_hand.take(stream, record.id, now)
            pool.submit(stream, record)

    async def _keep(self, partitions: Partitions) -> None:
        """The keeper keeps its pace while the store cannot be reached (a backoff would let
        the leases lapse once it can again); anything else goes to the supervisor."""
        while True:
            try:
                await partitions.keep()
            except StoreError as exc:
                if not exc.retryable:
                    raise
                log.warning("partitions of %s: %s", partitions.target, exc, extra={"target": partitions.target})
            await asyncio.sleep(self.lease_ms / 3000)

    async def stop(self) -> None:
        if not self.running:
            return
        loop = asyncio.get_running_loop()
        if any(p.owned for p in self.partitions.values()):
            # Hand ordered partitions over as a join does: leave the memberships, finish what
            # was read and its retries, up to `lease_ms`; then the leases go. A key still
            # waiting for a retry after that is left to the next holder.
            for partitions in self.partitions.values():
                partitions.hand_over()
                try:
                    await self.store.members(f"members.{partitions.target}", self.consumer, 0)
                except Exception as exc:
                    log.warning("leaving the membership of %s: %s", partitions.target, exc)
            deadline = loop.time() + self.lease_ms / 1000
            while loop.time() < deadline and not all(p.done() for p in self.partitions.values()):
                await asyncio.sleep(0.01)
        self.running = False
        if self.deliverer is not None:
            self.deliverer.running = False
        await self.supervisor.stop()
        self.gauges.values = {}  # a router that does not deliver reports nothing
        # Every pool's tasks cancelled in one step, what they hold of the fast path taken then
        # (none goes on running meanwhile), put back once they have stopped.
        for pool in self.pools.values():
            pool.cancel()
        held = [item for pool in self.pools.values() for item in lanes.held(pool)]
        for pool in self.pools.values():
            await pool.stop()
        await lanes.put_back(self.store, held)
        self.handlers.close()
        await self.handlers.aclose()
        await self.acker.flush(10)  # what was delivered is acked before its partitions are let go
        for partitions in self.partitions.values():
            try:
                await partitions.leave()
            except Exception as exc:
                log.warning("giving up the partitions of %s: %s", partitions.target, exc)
        # This event loop's connections go (a store used again connects again).
        await self.store.close()
        log.info("stopped delivering (consumer %s)", self.consumer)

    # ---- publish -------------------------------------------------------------------

    def _event(self, event: Any, data: Any, event_id: str | None) -> Event:
        if isinstance(event, Event):
            return event
        if isinstance(event, dict):
            return Event.from_cloudevent(event)
        if data is None:
            data = {}
        # Event(...)'s own checks, without the cost of its validators (the hot path)
        check_type(event)
        if not isinstance(data, dict):
            raise EventError(f"event data must be a JSON object (a dict), not {type(data).__name__}")
        if event_id is None:
            event_id = new_id()
        elif not isinstance(event_id, str) or not event_id:
            raise EventError(f"event id must be a non-empty string, not {shown(event_id)}")
        return trusted_event(event, data, event_id, None, now_text(), 1, SOURCE, {})

    def validate(self, event: Any, data: Any = None, *, id: str | None = None) -> Event:
        """The `Event` a publish of these arguments would accept; EventError (EventTooLarge: more
        than the store's `max_event_bytes`) or SchemaError if none."""
        return self._checked(event, data, id)[0]

    def _checked(self, event: Any, data: Any, event_id: str | None) -> tuple[Event, bytes]:
        """The `Event` a publish accepts, and its data as JSON text (what its deliveries carry)."""
        try:
            ev = self._event(event, data, event_id)
            if isinstance(event, Event):
                if ev.extensions:
                    check_extensions(ev.extensions)  # (a CloudEvent dict's are checked as it is read)
                check_time(ev.time)  # it travels in a header to HTTP targets: checked as it comes in
            elif isinstance(event, dict):
                check_time(ev.time)
            # refused here, not by the store after sync targets were called
            encoded = encode_data(ev, self.store.max_event_bytes)
            schema = self.schemas.get(ev.type)
            if schema is not None:
                validate(ev.data, schema)
        except ValueError:  # EventError, SchemaError
            if self.telemetry.active():
                self.telemetry.refused_event(None, "invalid")
            raise
        return ev, encoded

    async def publish(self, event: Any, data: Any = None, *, id: str | None = None) -> Receipt:
        self.supervisor.raise_fault()
        if not self.groups_ready:
            await self._ensure_groups()
        ev, encoded = self._checked(event, data, id)
        span = self.telemetry.publishing(ev) if self.telemetry.active() else None
        if span is None:
            return await self._publish(ev, encoded)
        try:
            receipt = await self._publish(span.event, encoded)
        except BaseException as exc:
            span.end(None, exc)
            raise
        span.end(receipt)
        return receipt

    async def _publish(self, ev: Event, encoded: bytes) -> Receipt:
        deliveries = self.routing(ev.type, ev.data)
        once = f"idempotency.{ev.id}"
        window = self.idempotency_window_ms
        if not deliveries:
            stored = await self.store.append_all(
                [(dead_stream(self.unrouted_dead_letter),
                  dead_entry(ev, None, (), (), "no route matched", self.store.now_ms()))],
                once=once, ttl_ms=window, timeout=self.publish_timeout)
            if stored is None:
                return Receipt(ev.id, frozenset(), duplicate=True)
            return Receipt(ev.id, frozenset(), unrouted=True)
        now = self.store.now_ms()
        sync = []
        entries: list[tuple[str, Entry]] = []
        fast: list[tuple[str, dict[str, Any]]] = []  # first deliveries for the memory store's fast path
        fast_path = lanes.applies(self.store, self.running, self.retain_delivered_ms)
        for target, routes in deliveries.items():
            if self.targets[target]["mode"] == "sync":
                sync.append((target, routes))
                continue
            key = key_of(ev.data, self.targets[target]["order_by"])
            delivery = delivery_entry(ev, encoded, target, [r for r, _ in routes], routes[0][1], key, now)
            if fast_path and lanes.takes(self.pools.get(target), self.targets[target]["order_by"] is not None):
                fast.append((self.stream_for(target, key), delivery))
            else:
                entries.append((self.stream_for(target, key), pack(delivery)))
        if not sync:
            return await self._store(ev, deliveries, entries, {}, {}, fast=fast, encoded=encoded)
        # A duplicate is delivered to no one, sync handlers included: publishes of one id in this
        # process take turns (across processes, two at the very same time may both call them).
        turn = self._publishing.setdefault(ev.id, [asyncio.Lock(), 0])
        turn[1] += 1
        try:
            async with turn[0]:
                if await self.store.remembered(once):
                    return Receipt(ev.id, frozenset(), duplicate=True)
                replies: dict[str, Any] = {}
                errors: dict[str, str] = {}
                failures: dict[str, Attempt] = {}
                self.handlers.prepare(target for target, _ in sync)  # before anything is called or stored
                for target, routes in sync:
                    ok, value, dead = await self._call_sync(ev, target, routes, encoded)
                    if ok:
                        replies[target] = value
                    else:
                        errors[target], failures[target] = value
                    if dead is not None:
                        entries.append(dead)
                receipt = await self._store(ev, deliveries, entries, replies, errors, failures, fast=fast,
                                            encoded=encoded)
                if entries:
                    # Remembered for the event as a whole, beside each of its streams: the next
                    # publish of this id calls no sync handler (even when this one found every
                    # stream had it: an earlier publish stored it, then failed to remember it).
                    await self.store.remember(once, window)
                return receipt
        finally:
            turn[1] -= 1
            if not turn[1]:
                del self._publishing[ev.id]

    async def _store(self, ev: Event, deliveries: Routes, entries: list[tuple[str, Entry]],
                     replies: dict[str, Any], errors: dict[str, str],
                     failures: dict[str, Attempt] | None = None, *,
                     fast: list[tuple[str, dict[str, Any]]] | None = None, encoded: bytes = b"") -> Receipt:
        """The publish's one store step; its receipt. `fast`: deliveries for the memory
        store's fast path (runtime/lanes.py), handed to their pools once the step is done."""
        # The deliveries, the sync targets' dead letters and the idempotency key in one step:
        # a publish that raised stored nothing, so publishing the same event again is safe.
        fast = fast or []
        if fast and not lanes.applies(self.store, self.running, self.retain_delivered_ms):
            entries = [*entries, *((stream, pack(delivery)) for stream, delivery in fast)]  # (stopped meanwhile)
            fast = []
        accepted = sum(1 for _, entry in entries if isinstance(entry, Packed)) + len(fast)  # (not dead letters)
        self.outstanding.started(accepted)
        try:
            stored = await self.store.append_all(entries, once=f"idempotency.{ev.id}",
                                                 ttl_ms=self.idempotency_window_ms, timeout=self.publish_timeout)
        except BaseException:
            self.outstanding.finished(accepted)
            raise
        if stored is None:
            self.outstanding.finished(accepted)
            return Receipt(ev.id, frozenset(), duplicate=True)
        if fast:  # (no await since the store step: delivery is still running)
            lanes.hand_over(self.pools, fast, encoded)
        return Receipt(ev.id, frozenset(deliveries), replies, errors=errors, failures=failures or {})

    async def _call_sync(self, ev: Event, target: str, routes: list[tuple[str, Any]], encoded: bytes | None = None
                         ) -> tuple[bool, Any, tuple[str, dict[str, Any]] | None]:
        """Call a sync target with its retries: (succeeded, reply or error, its dead letter entry).
        Each attempt gets a copy of the data of its own (`encoded`: the data as JSON text), as
        an async delivery does: what a handler changes, neither the publisher, another target
        nor a later attempt sees."""
        if encoded is None:
            encoded = orjson.dumps(ev.data)
        policy = self.targets[target]["retry"]
        first = self.store.now_ms()
        history: list[Attempt] = []
        attempt = 1
        telemetry = self.telemetry
        while True:
            span = telemetry.delivering(ev, target, attempt, [r for r, _ in routes]) if telemetry.active() else None
            try:
                reply = await self.handlers.call(target, delivered(copy_of(ev, encoded), routes[0][1], attempt, None))
            except BaseException as exc:  # a handler's failure, whatever it is
                if isinstance(exc, KeyboardInterrupt | GeneratorExit) or (
                        isinstance(exc, asyncio.CancelledError) and cancelling()):
                    if span is not None:
                        span.end(target, "cancelled")
                    raise  # the publish itself is cancelled
                failed = failure(exc)
                kind, message = failed.kind, failed.message
                history.append(Attempt(attempt, kind, message, self.store.now_ms(), failed.status))
                decision = decide(policy, attempt, failed.kinds, self.store.now_ms() - first, self.random,
                                  failed.retry_after_ms)
                if span is not None:
                    span.end(target, "retry" if decision.retry else "failed", kind)
                if not decision.retry:
                    dead = self.targets[target]["dead_letter"]
                    entry = None
                    if dead is not None and self.targets[target]["on_exhausted"] != "drop":
                        entry = (dead_stream(dead), dead_entry(ev, target, tuple(r for r, _ in routes),
                                                               tuple(history), decision.reason, self.store.now_ms()))
                    return False, (f"{kind}: {message} ({decision.reason})", history[-1]), entry
                await asyncio.sleep(decision.delay_ms / 1000)
                attempt += 1
                continue
            if span is not None:
                span.end(target, "delivered", latency_ms=self.store.now_ms() - first)
            return True, reply, None

    # ---- gauges ------------------------------------------------------------------------

    async def _read_gauges(self) -> None:
        """What the store holds, read every `gauge_interval` seconds for the gauges (one
        pipelined read of every stream's counts: docs/operations.md)."""
        while self.running:
            self.gauges.values = await self.gauge_values()
            await asyncio.sleep(self.gauge_interval)

    async def gauge_values(self) -> dict[tuple[str, str], float]:
        now = self.store.now_ms()
        streams = {name: self.streams_of(name) for name in self._async_targets()}
        dead = {name: dead_stream(name) for name in dict.fromkeys([*self.artifact["dead_letters"],
                                                                   self.unrouted_dead_letter])}
        stats = await self.store.stream_stats([s for group in streams.values() for s in group], GROUP)
        depth = await self.store.stream_stats(list(dead.values()), GROUP)
        values: dict[tuple[str, str], float] = {}
        for name, group in streams.items():
            read = [stats[s] for s in group if s in stats]
            values["interlock.backlog", name] = sum(s.unread for s in read)
            pool = self.pools.get(name)  # (+ the memory store's fast path: taken here, not pending in the store)
            fast = lanes.held(pool) if pool is not None else []
            values["interlock.pending", name] = sum(s.pending for s in read) + len(fast)
            values["interlock.retries.scheduled", name] = sum(s.scheduled for s in read)
            oldest = [s.oldest.ms for s in read if s.oldest is not None] + [r.entry["first_ms"] for _, r in fast]
            values["interlock.oldest.age", name] = max(now - min(oldest), 0) if oldest else 0
        for name, stream in dead.items():
            values["interlock.dead_letters.depth", name] = depth[stream].length if stream in depth else 0
        return values

    # ---- retention ----------------------------------------------------------------------

    async def housekeeping(self) -> int:
        """Apply retention: trim acknowledged deliveries older than `retain_delivered_ms`, and
        dead-letter entries older than their dead letter's `retain`. Returns entries dropped."""
        dropped = 0
        # Only streams with deliveries acknowledged here since the last time (with a retention
        # time, until they hold none): an idle process trims nothing.
        acked = set(self.acked)  # (the set is shared with the deliverer: emptied, not replaced)
        self.acked.clear()
        for stream in acked:
            dropped += await self.store.trim(stream, max_age_ms=self.retain_delivered_ms, group=GROUP)
            if self.retain_delivered_ms and await self.store.length(stream):
                self.acked.add(stream)
        for name, dead in self.artifact["dead_letters"].items():
            if dead.get("retain_ms") is not None:
                dropped += await self.store.trim(dead_stream(name), max_age_ms=dead["retain_ms"])
        return dropped

    # ---- dead letters -------------------------------------------------------------------

    def _dead_letter_name(self, name: str) -> str:
        """`name` if it is a dead letter of the router (the unrouted one included), else a DeliveryError."""
        names = [*self.artifact["dead_letters"], self.unrouted_dead_letter]
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else f" (dead letters: {', '.join(sorted(set(names)))})"
            raise DeliveryError(f"no dead letter `{name}` in this router{hint}")
        return name

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        return await read_dead_letters(self.store, self._dead_letter_name(name))

    async def dead_letters_all(self) -> list[DeadLetter]:
        """The entries of every dead letter of the router, the unrouted one included."""
        names = dict.fromkeys([*self.artifact["dead_letters"], self.unrouted_dead_letter])
        return [entry for name in names for entry in await self.dead_letters(name)]

    async def redrive(self, name: str, ids: list[str] | None = None) -> int:
        """Deliver dead-lettered events to their target again, from a first attempt; returns how many."""
        self._dead_letter_name(name)
        chosen = [d for d in await self.dead_letters(name) if ids is None or d.id in ids]
        count = 0
        for dead in chosen:
            if dead.target is None:  # published anew (an id of its own: the old one is remembered), as it came
                anew = f"{dead.event.id}~redrive~{dead.id}"  # (the same for a redrive running alongside)
                receipt = await self.publish(attrs.evolve(dead.event, id=anew, attempt=1, key=None))
                count += 0 if receipt.unrouted or receipt.duplicate else 1
            elif self.targets[dead.target]["mode"] == "sync":
                # Called now, with its retries; failed again, it is dead-lettered again.
                routes = self.routing(dead.event.type, dead.event.data).get(dead.target) or [(r, None) for r in
                                                                                          dead.routes]
                ok, _value, again = await self._call_sync(dead.event, dead.target, routes)
                if again is not None:
                    await self.store.append(*again)
                count += 1 if ok else 0
            else:
                deliveries = self.routing(dead.event.type, dead.event.data).get(dead.target, [])
                key = key_of(dead.event.data, self.targets[dead.target]["order_by"])
                entry = delivery_entry(dead.event, None, dead.target, list(dead.routes),
                                       deliveries[0][1] if deliveries else None, key, self.store.now_ms())
                entry["delivery"] = f"{dead.event.id}/{dead.target}/redrive-{dead.id}"
                # Once per entry: a redrive running alongside (another operator) does not put
                # it back a second time.
                self.outstanding.started()
                stored = await self.store.append_all([(self.stream_for(dead.target, key), pack(entry))],
                                                     once=f"redrive.{name}.{dead.id}",
                                                     ttl_ms=self.idempotency_window_ms)
                if stored is None:
                    self.outstanding.finished()
                else:
                    count += 1
            await self.store.delete(dead_stream(name), [EntryId.parse(dead.id)])
        return count

    # ---- drain --------------------------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> None:
        """Return when every async delivery accepted so far is acknowledged or dead-lettered;
        TimeoutError after `timeout` seconds, saying per target what is still outstanding."""
        self.supervisor.raise_fault()
        if not self.store.shared and self.outstanding.count and not self.running:
            raise DeliveryError(f"{self.outstanding.count} deliveries are waiting, but delivery is not running: "
                                "drain inside `async with router:`")
        try:
            async with asyncio.timeout(timeout):
                await (self._drain_shared() if self.store.shared else self._drain_here())
        except TimeoutError:
            try:  # (the store may hang: what is outstanding is asked within a bound of its own)
                async with asyncio.timeout(OUTSTANDING_TIMEOUT):
                    outstanding = await self._outstanding()
            except TimeoutError:
                outstanding = f"the store does not answer within {OUTSTANDING_TIMEOUT:g} s"
            raise TimeoutError(f"drain: not done after {timeout} s: {outstanding}") from None
        self.supervisor.raise_fault()  # one that happened meanwhile

    async def _outstanding(self) -> str:
        """What is left to do, per async target: for the message of a drain that timed out
        (every stream's counts in one read, as the gauges read them)."""
        streams = {name: self.streams_of(name) for name in self._async_targets()}
        try:
            stats = await self.store.stream_stats([s for group in streams.values() for s in group], GROUP)
        except Exception as exc:  # the store does not answer: say so, not what cannot be known
            return f"the store does not answer ({type(exc).__name__}: {exc})"
        parts = []
        for name, group in streams.items():
            read = [stats[s] for s in group if s in stats]
            pool = self.pools.get(name)
            # (the memory store's fast path: running here, with no entry pending in the store)
            pending = sum(s.pending for s in read) + (
                sum(1 for _, r in pool.in_progress.values() if lanes.is_fast(r)) if pool is not None else 0)
            retries = sum(1 for s in read if s.scheduled)
            waiting = len(pool.queue) + sum(len(q) for q in pool.held.values()) if pool is not None else 0
            bits = []
            if pending:
                bits.append(f"{pending} read and not yet acknowledged")
            if waiting:
                bits.append(f"{waiting} waiting here behind a busy key or a full pool")
            if retries:
                bits.append(f"a retry scheduled on {retries} of its streams")
            if not bits and any(s.unread for s in read):
                bits.append("deliveries not yet read")
            if bits:
                parts.append(f"`{name}`: " + ", ".join(bits))
        return "; ".join(parts) or "nothing is left in the store (the last acknowledgements were on their way)"

    async def _drain_here(self) -> None:
        while not self.outstanding.idle.is_set():
            try:
                async with asyncio.timeout(0.1):
                    await self.outstanding.idle.wait()
            except TimeoutError:
                self.supervisor.raise_fault()

    async def _drain_shared(self) -> None:
        """On a shared store, other processes deliver too: wait until no async target has a
        delivery pending or unread and no retry is scheduled, whoever does the work."""
        streams = [stream for name in self._async_targets() for stream in self.streams_of(name)]
        pause = 0.02  # asked again sooner at first, then less often (each check reads every stream)
        while True:
            try:
                if await self.store.quiet(streams, GROUP):
                    return
            except Exception as exc:  # the store is unreachable: what is outstanding is unknown
                if not getattr(exc, "retryable", False):
                    raise
                log.warning("drain: %s; asking again", exc)
            self.supervisor.raise_fault()
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.25)


__all__ = ["Attempt", "DeadLetter", "DeliveryError", "Engine", "Receipt"]
