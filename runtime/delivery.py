"""Delivery: publish, handlers, retries, dead letters, ordering, idempotency — on any event store.

How an event travels:

1. `publish` builds the `Event` (refusing a bad type, or data that breaks a declared
   schema, before anything is stored), and remembers its id for the idempotency window: a
   second publish of the same id within it is accepted and delivered to no one.
2. The router decides the targets. No target: the event goes to the unrouted dead letter.
3. Each **async** target gets a delivery entry on its stream (`deliveries.TARGET`); the
   store's bound may make `publish` wait, or refuse after `publish_timeout` (StoreFull).
   Nothing is dropped. Then each **sync** target's handler is called right away, with its
   timeout per attempt and its retries; its reply (or its failure after retries) comes
   back in the receipt.
4. Workers (per async target, `concurrency` of them) read deliveries from the target's
   consumer group and call its handler with the event (its data transformed when the route
   says `with { }`). Success: ack. Failure: the policy decides (runtime/retry.py): a retry
   is scheduled on the store's delayed schedule, then the delivery acked; or, when the
   policy gives up, the delivery goes to the target's dead letter with every attempt's
   error and time, then is acked. Delivery is at least once: a crash between two of these
   steps repeats a step, never skips one.
5. `order by`: deliveries with the same key run one at a time, in publish order, retries
   included: a key whose delivery is being retried holds back later deliveries of that key
   (they wait, still pending in the store); other keys keep flowing.

`drain` returns when every delivery accepted so far has been acked or dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import os
import random
import sys
import traceback
import types
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import attrs

from .event import Event, EventError
from .predicates import values_at
from .retry import decide
from .schema import validate
from .store import EntryId, EventStore, Record, StoreError

GROUP = "interlock"
T = TypeVar("T")
Handler = Callable[[Event], Any]


class DeliveryError(Exception):
    """A router that cannot start or deliver as asked; the message names the target."""


@attrs.frozen
class Receipt:
    id: str
    targets: frozenset[str]
    replies: dict[str, Any] = attrs.Factory(dict)
    unrouted: bool = False
    duplicate: bool = False
    errors: dict[str, str] = attrs.Factory(dict)  # sync targets that failed after their retries


@attrs.frozen
class Attempt:
    attempt: int
    kind: str
    message: str
    at_ms: int


@attrs.frozen
class DeadLetter:
    """An event that a target could not take, with its whole history."""

    id: str  # the entry's id in the dead-letter stream
    dead_letter: str
    event: Event
    target: str | None  # None for an unrouted event
    routes: tuple[str, ...]
    attempts: tuple[Attempt, ...]
    reason: str
    at_ms: int


def apply_transform(transform: dict[str, Any], data: Any) -> dict[str, Any]:
    """What a target receives from a `with { }`: copied fields, constants, nested objects.
    A copied path that reaches nothing is left out; one that passes through lists gives a list."""
    out: dict[str, Any] = {}
    for key, spec in transform.items():
        if "copy" in spec:
            found = values_at(data, spec["copy"])
            through_list = _passes_list(data, spec["copy"])
            if found:
                out[key] = found if through_list else found[0]
        elif "object" in spec:
            out[key] = apply_transform(spec["object"], data)
        else:
            out[key] = spec["value"]
    return out


def _passes_list(data: Any, path: list[str]) -> bool:
    current = data
    for part in path[:-1]:
        if not isinstance(current, dict):
            return False
        current = current.get(part)
        if isinstance(current, list):
            return True
    return False


def _key_of(data: Any, path: list[str] | None) -> Any:
    if path is None:
        return None
    found = values_at(data, path)
    return found[0] if len(found) == 1 and not isinstance(found[0], (list, dict)) else (
        repr(found) if found else None)


class Engine:
    """The delivery side of a router, bound to one store."""

    def __init__(self, router: Any, store: EventStore, *, idempotency_window_ms: int = 24 * 3600 * 1000,
                 publish_timeout: float | None = None, seed: int | None = None,
                 retain_delivered_ms: int = 0, housekeeping_ms: int = 1000, claim_idle_ms: int = 30_000,
                 partitions: int = 16, lease_ms: int = 10_000) -> None:
        self.router = router
        self.store = store
        self.targets: dict[str, dict[str, Any]] = router.targets
        self.schemas: dict[str, Any] = router.artifact["events"]
        self.unrouted_dead_letter: str = router.artifact.get("unrouted") or "unrouted"
        self.handlers: dict[str, Handler] = {}
        self.coroutine_functions: dict[Handler, bool] = {}  # inspect's answer, remembered
        self.idempotency_window_ms = idempotency_window_ms
        # Retention: acknowledged deliveries are kept this long (for replay), then trimmed;
        # dead letters for their `retain` (kept forever without one).
        self.retain_delivered_ms = retain_delivered_ms
        self.housekeeping_ms = housekeeping_ms
        # Deliveries a worker reads at once (the rest go to the target's ready queue): more from a
        # shared store, where each read is a round trip.
        self.batch = 128 if store.shared else 16
        # On a shared store, deliveries pending this long with a consumer (a crashed process)
        # are taken over; never less than twice a target's timeout, so live work is not stolen.
        self.claim_idle_ms = claim_idle_ms
        self.groups_ready = False
        # `order by` on a shared store: a target's deliveries are split by key over `partitions`
        # streams, each consumed by one process at a time (the holder of its lease).
        self.partitions = partitions
        self.lease_ms = lease_ms
        self.owned: dict[str, list[str]] = {}
        self.leaving: dict[str, set[str]] = {}  # partitions being handed over to another instance
        self.inflight: dict[str, set[EntryId]] = {}  # per partition: deliveries read and not yet done with
        # Partitions whose pending deliveries may include some this instance read but never got
        # (a read whose reply was lost, a hand-over called off): looked for before the next read.
        self.recovering: set[str] = set()
        self.lease_until: dict[str, int] = {}  # per owned partition: when its lease runs out, at the latest
        self.reading: dict[str, asyncio.Lock] = {}
        self.publish_timeout = publish_timeout
        self.random = random.Random(seed).random
        self.tasks: list[asyncio.Task[None]] = []
        self.outstanding = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.running = False
        self.stopping = False  # handing partitions over before a stop
        self.consumer = f"{os.getpid()}-{id(self):x}"
        # order by: per target, the key being delivered, and later deliveries held back
        self.busy: dict[str, dict[Any, str]] = {}
        self.held: dict[str, dict[Any, deque[Record]]] = {}
        self.ready: dict[str, asyncio.Queue[Record]] = {}
        self.acking: set[asyncio.Future[int]] = set()  # acks on their way to a shared store
        self.read_at: dict[tuple[str, EntryId], int] = {}  # when a delivery waiting here was read

    # ---- setup -------------------------------------------------------------------

    def handler(self, target: str) -> Callable[[Handler], Handler]:
        if target not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise DeliveryError(f"no target `{target}` in this router (targets: {known})")

        def register(function: Handler) -> Handler:
            if target in self.handlers:
                raise DeliveryError(f"target `{target}` already has a handler")
            self.handlers[target] = function
            return function

        return register

    async def start(self) -> None:
        routed = {d["target"] for r in self.router.artifact["dispatch"]["routes"]
                  for arm in ([r] if r["kind"] == "route" else r["branches"]) for d in arm["deliveries"]}
        missing = sorted(t for t in routed if t not in self.handlers)
        if missing and not self.store.shared:
            raise DeliveryError("no handler for routed target(s) " + ", ".join(f"`{t}`" for t in missing) +
                                ": register one with @router.handler(NAME) before starting")
        # On a shared store, other processes deliver for the targets this one has no handler for.
        await self._ensure_groups()
        self.running = True
        self.stopping = False
        self.inflight.clear()  # what an earlier run had in hand is pending in the store
        self.read_at.clear()
        for name, target in self.targets.items():
            if target["mode"] != "async" or name not in self.handlers:
                continue
            self.busy[name], self.held[name], self.ready[name] = {}, {}, asyncio.Queue()
            if not self.store.shared:
                # Deliveries an earlier run of this router read and did not finish (it was
                # stopped in between) are this process's alone: they come first.
                stream = f"deliveries.{name}"
                if unfinished := len(await self.store.pending(stream, GROUP)):
                    for record in await self.store.claim(stream, GROUP, self.consumer, min_idle_ms=0,
                                                         count=unfinished):
                        self.ready[name].put_nowait(record)
            if self._partitioned(name):
                self.owned[name], self.leaving[name] = [], set()
                self.tasks.append(asyncio.create_task(self._keeper(name)))
            for number in range(max(target["concurrency"], 1)):
                self.tasks.append(asyncio.create_task(self._worker(name, f"{self.consumer}-{number}")))
        self.tasks.append(asyncio.create_task(self._scheduler()))

    async def stop(self) -> None:
        if any(self.owned.values()):
            await self._hand_over()
        self.running = False
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.acking:  # what was delivered is acked before its partitions are let go
            await asyncio.wait(list(self.acking), timeout=10)
        for target, streams in self.owned.items():
            with contextlib.suppress(StoreError):
                await self.store.members(f"members.{target}", self.consumer, 0)
            for stream in streams:
                with contextlib.suppress(StoreError):
                    await self.store.release(f"lease.{stream}", self.consumer)
        self.tasks = []

    async def _hand_over(self) -> None:
        """Before stopping, hand the partitions of ordered targets over as a join does (see
        `_keeper`): leave the memberships, finish what was read and its retries, up to
        `lease_ms`; then the leases go. A key still waiting for a retry after that is left to
        the next holder, which may deliver its later events first."""
        self.stopping = True
        for target, streams in self.owned.items():
            self.leaving[target].update(streams)
            with contextlib.suppress(StoreError):
                await self.store.members(f"members.{target}", self.consumer, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lease_ms / 1000
        while loop.time() < deadline and any(
                self._started_keys(target, stream) for target, streams in self.owned.items() for stream in streams):
            await asyncio.sleep(0.01)

    # ---- publish -------------------------------------------------------------------

    def _event(self, event: Any, data: Any, event_id: str | None) -> Event:
        if isinstance(event, Event):
            return event
        if isinstance(event, dict):
            return Event.from_cloudevent(event)
        if data is None:
            data = {}
        return Event(event, data) if event_id is None else Event(event, data, id=event_id)  # checks the type

    def _partitioned(self, target: str) -> bool:
        return self.store.shared and self.targets[target]["order_by"] is not None

    def _stream(self, target: str, key: Any) -> str:
        """The stream a delivery of `target` with ordering key `key` goes to."""
        if not self._partitioned(target):
            return f"deliveries.{target}"
        part = zlib.crc32(json.dumps(key, sort_keys=True).encode()) % self.partitions
        return f"deliveries.{target}.p{part}"

    def _streams(self, target: str) -> list[str]:
        if not self._partitioned(target):
            return [f"deliveries.{target}"]
        return [f"deliveries.{target}.p{part}" for part in range(self.partitions)]

    async def _ensure_groups(self) -> None:
        """Every async target's consumer group, so that nothing published is invisible to them."""
        if not self.groups_ready:
            for name, target in self.targets.items():
                if target["mode"] == "async":
                    for stream in self._streams(name):
                        await self.store.ensure_group(stream, GROUP)
            self.groups_ready = True

    async def publish(self, event: Any, data: Any = None, *, id: str | None = None) -> Receipt:
        await self._ensure_groups()
        ev = self._event(event, data, id)
        schema = self.schemas.get(ev.type)
        if schema is not None:
            validate(ev.data, schema)
        deliveries = self.router.deliveries(ev.type, ev.data)
        once = f"idempotency.{ev.id}"
        if not deliveries:
            stored = await self.store.append_all(
                [(f"dead.{self.unrouted_dead_letter}", self._dead_entry(ev, None, (), (), "no route matched"))],
                once=once, ttl_ms=self.idempotency_window_ms, timeout=self.publish_timeout)
            if stored is None:
                return Receipt(ev.id, frozenset(), duplicate=True)
            return Receipt(ev.id, frozenset(), unrouted=True)
        now = self.store.now_ms()
        sync = []
        entries = []
        for target, routes in deliveries.items():
            if self.targets[target]["mode"] == "sync":
                sync.append((target, routes))
                continue
            key = _key_of(ev.data, self.targets[target]["order_by"])
            entries.append((self._stream(target, key), {
                "event": ev.to_cloudevent(), "target": target, "routes": [r for r, _ in routes],
                "transform": routes[0][1], "attempt": 1, "first_ms": now, "errors": [],
                "delivery": f"{ev.id}/{target}", "key": key}))
        # The deliveries and the idempotency key in one step: a publish that raised stored
        # nothing, so publishing the same event again is safe.
        for _ in entries:
            self._started()
        try:
            stored = await self.store.append_all(entries, once=once, ttl_ms=self.idempotency_window_ms,
                                                 timeout=self.publish_timeout)
        except BaseException:
            for _ in entries:
                self._finished()
            raise
        if stored is None:
            for _ in entries:
                self._finished()
            return Receipt(ev.id, frozenset(), duplicate=True)
        replies: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for target, routes in sync:
            ok, value = await self._call_sync(ev, target, routes)
            if ok:
                replies[target] = value
            else:
                errors[target] = value
        return Receipt(ev.id, frozenset(deliveries), replies, errors=errors)

    async def _call(self, target: str, event: Event) -> Any:
        function = self.handlers.get(target)
        if function is None:
            raise DeliveryError(f"no handler for target `{target}` in this process")
        timeout = self.targets[target]["timeout_ms"] / 1000
        coroutine_function = self.coroutine_functions.get(function)
        if coroutine_function is None:
            coroutine_function = self.coroutine_functions[function] = inspect.iscoroutinefunction(function)
        if not coroutine_function:
            async with asyncio.timeout(timeout):
                return await asyncio.to_thread(function, event)
        # The handler runs in this task, not a task of its own, but in a copy of its context
        # (as a task would: context variables it sets stay its own). Its first step runs now,
        # as `await` would run it; only if it then waits does the deadline, counted from
        # before that step, need a timer (a handler that never waits cannot be interrupted).
        deadline = asyncio.get_running_loop().time() + timeout
        context = contextvars.copy_context()
        coroutine = function(event)
        try:
            waiting_on = context.run(coroutine.send, None)
        except StopIteration as done:
            return done.value
        async with asyncio.timeout_at(deadline):
            return await _resume(coroutine, waiting_on, context)

    async def _call_sync(self, ev: Event, target: str, routes: list[tuple[str, Any]]) -> tuple[bool, Any]:
        policy = self.targets[target]["retry"]
        first = self.store.now_ms()
        history: list[Attempt] = []
        delivered = _delivered(ev, routes[0][1], 1, None)
        attempt = 1
        while True:
            try:
                return True, await self._call(target, delivered)
            except Exception as exc:  # a handler's failure, whatever it is, is its error kind
                kind, message = _describe(exc)
                history.append(Attempt(attempt, kind, message, self.store.now_ms()))
                decision = decide(policy, attempt, kind, self.store.now_ms() - first, self.random)
                if not decision.retry:
                    dead = self.targets[target]["dead_letter"]
                    if dead is not None and self.targets[target]["on_exhausted"] != "drop":
                        await self._dead_letter(dead, ev, target, tuple(r for r, _ in routes), tuple(history),
                                                decision.reason)
                    return False, f"{kind}: {message} ({decision.reason})"
                await asyncio.sleep(decision.delay_ms / 1000)
                attempt += 1
                delivered = _delivered(ev, routes[0][1], attempt, None)

    # ---- workers -------------------------------------------------------------------

    async def _keeper(self, target: str) -> None:
        """Share an ordered target's partitions with the other live instances, each holding
        the lease of the partitions it is given, renewing them.

        Every instance with a handler for the target beats in its membership; with the live
        members sorted, partition p belongs to member p mod n. On taking a partition, its
        pending deliveries are claimed first (they come before what is unread). A partition
        this instance should no longer hold (another instance came up) is handed over with
        care, so that one key is never delivered by two instances at once, nor out of order:
        the instance finishes the deliveries it has read and their retries, leaves every new
        delivery pending, and lets the lease go once none of its keys is left; the next
        holder claims what was left pending first."""
        owned = self.owned[target]
        leaving = self.leaving[target]
        streams = self._streams(target)
        while self.running:
            try:
                if self.stopping:  # handing everything over: only keep the leases until then
                    for stream in owned:
                        await self._renew(stream)
                    await asyncio.sleep(self.lease_ms / 3000)
                    continue
                members = await self.store.members(f"members.{target}", self.consumer, self.lease_ms)
                mine = members.index(self.consumer) if self.consumer in members else 0
                for number, stream in enumerate(streams):
                    wanted = number % max(len(members), 1) == mine
                    if wanted:
                        if stream in leaving:  # given back while it was being handed over: what
                            leaving.discard(stream)  # was left pending for the next holder is ours
                            self.recovering.add(stream)
                    elif stream in owned:
                        leaving.add(stream)
                    if stream in leaving and not self._started_keys(target, stream):
                        # No read of the partition may be under way: what it took would be
                        # pending here after the next holder has claimed what was.
                        async with self.reading.setdefault(target, asyncio.Lock()):
                            done = not self._started_keys(target, stream)  # a read may have brought retries
                            if done:
                                owned.remove(stream)
                                leaving.discard(stream)
                        if done:
                            await self.store.release(f"lease.{stream}", self.consumer)
                            continue
                    if not wanted and stream not in owned:
                        continue
                    held = await self._renew(stream)
                    if held and stream not in owned:
                        unfinished = len(await self.store.pending(stream, GROUP))
                        taken = await self.store.claim(stream, GROUP, self.consumer, min_idle_ms=0,
                                                       count=unfinished) if unfinished else []
                        for record in taken:
                            self._taken(stream, record)
                            self.ready[target].put_nowait(record)
                        owned.append(stream)
                    elif not held and stream in owned:
                        # Lost: this instance stalled longer than the lease, and another took the
                        # partition over (claiming what was pending here). Forget it entirely.
                        async with self.reading.setdefault(target, asyncio.Lock()):
                            owned.remove(stream)
                            leaving.discard(stream)
                            self._forget(target, stream)
                    elif held and stream not in leaving and stream not in self.recovering:
                        # A safety net: more pending than in hand means deliveries were lost
                        # on the way here (a read's reply that never came back).
                        pending = await self.store.pending(stream, GROUP)
                        if len(pending) > len(self.inflight.get(stream, ())):
                            self.recovering.add(stream)
            except StoreError as exc:
                print(f"interlock: {exc}", file=sys.stderr)
            await asyncio.sleep(self.lease_ms / 3000)

    async def _renew(self, stream: str) -> bool:
        """Take or renew a partition's lease; whether this instance holds it (and until when)."""
        asked = self.store.now_ms()
        held = await self.store.lease(f"lease.{stream}", self.consumer, self.lease_ms)
        if held:
            self.lease_until[stream] = asked + self.lease_ms
        return held

    def _forget(self, target: str, stream: str) -> None:
        """Drop what this instance holds of a partition it lost: its waiting deliveries, its
        held-back ones, its keys' places. (A delivery already running finishes; its ack then
        finds it claimed by the new holder, at least once.)"""
        ready = self.ready[target]
        waiting = [ready.get_nowait() for _ in range(ready.qsize())]
        for record in waiting:
            if self._stream(target, record.entry.get("key")) != stream:
                ready.put_nowait(record)
        for key in [key for key in self.held[target] if self._stream(target, key) == stream]:
            del self.held[target][key]
        for key in [key for key in self.busy[target] if self._stream(target, key) == stream]:
            del self.busy[target][key]
        self.inflight.pop(stream, None)
        self.recovering.discard(stream)
        self.lease_until.pop(stream, None)

    def _taken(self, stream: str, record: Record) -> None:
        self.inflight.setdefault(stream, set()).add(record.id)

    def _settled(self, target: str, record: Record) -> None:
        """A delivery of a partition read by this instance is done with (acked, or left pending)."""
        if self._partitioned(target):
            self.inflight[self._stream(target, record.entry.get("key"))].discard(record.id)

    def _started_keys(self, target: str, stream: str) -> bool:
        """Whether this instance still has deliveries of the partition in hand, or keys of it
        that are waiting for a retry."""
        return bool(self.inflight.get(stream)) or any(
            self._stream(target, key) == stream for key in self.busy[target])

    async def _worker(self, target: str, consumer: str) -> None:
        ready = self.ready[target]
        if self._partitioned(target):
            await self._partition_worker(target, consumer)
            return
        stream = f"deliveries.{target}"
        timeout_ms = self.targets[target]["timeout_ms"]
        idle_ms = max(self.claim_idle_ms, 2 * timeout_ms)
        next_claim = 0
        failures = 0
        while self.running:
            try:
                record = ready.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    records = []
                    if self.store.shared and self.store.now_ms() >= next_claim:
                        # deliveries a crashed process left pending
                        records = await self.store.claim(stream, GROUP, consumer, min_idle_ms=idle_ms,
                                                         count=self.batch)
                        next_claim = self.store.now_ms() + idle_ms // 4
                    if not records:
                        records = await self.store.read(stream, GROUP, consumer, count=self.batch, block=0.05)
                    failures = 0
                except StoreError as exc:
                    failures += 1  # the store is unreachable or was reset: back off, keep trying, lose nothing
                    wait = min(0.05 * 2 ** failures, 5.0)
                    print(f"interlock: {exc}; retrying in {wait:.2f} s", file=sys.stderr)
                    await asyncio.sleep(wait)
                    with contextlib.suppress(StoreError):  # a group lost with the store's data
                        await self.store.ensure_group(stream, GROUP)
                    continue
                if not records:
                    continue
                if self.store.shared:
                    now = self.store.now_ms()
                    for record in records:
                        self.read_at[target, record.id] = now
                for record in records[1:]:
                    ready.put_nowait(record)  # shared with this target's other workers
                record = records[0]
            if self.store.shared:
                # A delivery that waited here so long that it could not be done before another
                # instance may claim it as abandoned is left to that claim (at most once at a time).
                read = self.read_at.pop((target, record.id), None)
                if read is not None and self.store.now_ms() - read + timeout_ms >= idle_ms:
                    continue
            await self._deliver_safely(target, record)

    async def _partition_worker(self, target: str, consumer: str) -> None:
        """A worker of an ordered target on a shared store: reads the partitions this process
        holds the lease of (claims were done when the lease was taken)."""
        ready = self.ready[target]
        lock = self.reading.setdefault(target, asyncio.Lock())
        turn = 0
        while self.running:
            try:
                record = ready.get_nowait()
            except asyncio.QueueEmpty:
                # One reader at a time: two reads in flight could come back in either order,
                # and the ready queue must hold each partition's deliveries in stream order.
                async with lock:
                    if ready.empty():
                        turn = await self._read_partitions(target, consumer, turn)
                if ready.empty():
                    await asyncio.sleep(0.005)
                continue
            await self._deliver_safely(target, record)

    async def _read_partitions(self, target: str, consumer: str, turn: int) -> int:
        """Read the next owned partition that has deliveries into the ready queue; the next turn."""
        owned = list(self.owned[target])
        for offset in range(len(owned)):
            stream = owned[(turn + offset) % len(owned)]
            try:
                if stream in self.recovering and stream not in self.leaving[target]:
                    await self._recover(target, stream, consumer)
                records = await self.store.read(stream, GROUP, consumer, count=self.batch)
            except StoreError as exc:
                print(f"interlock: {exc}", file=sys.stderr)
                self.recovering.add(stream)  # the read may have taken deliveries it did not bring
                continue
            if stream in self.leaving[target]:
                # Handing the partition over: only retries of what this instance started go on
                # here; new deliveries stay pending, for the next holder to claim first.
                records = [record for record in records if record.entry["attempt"] > 1]
            if records:
                for record in records:
                    self._taken(stream, record)
                    self.ready[target].put_nowait(record)
                return turn + offset + 1
        return turn

    async def _recover(self, target: str, stream: str, consumer: str) -> None:
        """Deliveries pending on an owned partition that this instance does not have in hand:
        taken back, in stream order, ahead of anything unread (they are older)."""
        hand = self.inflight.get(stream, set())
        lost = {p.id for p in await self.store.pending(stream, GROUP)} - hand
        if lost:
            records = await self.store.claim(stream, GROUP, consumer, min_idle_ms=0, count=len(lost) + len(hand))
            for record in sorted((r for r in records if r.id in lost), key=lambda r: r.id):
                self._taken(stream, record)
                self.ready[target].put_nowait(record)
        self.recovering.discard(stream)

    async def _deliver_safely(self, target: str, record: Record) -> None:
        try:
            await self._deliver(target, record)
        except asyncio.CancelledError:
            raise
        except StoreError as exc:  # stopping while the store is unreachable: left pending
            print(f"interlock: {exc}; delivery {record.id} of `{target}` stays pending", file=sys.stderr)
        except Exception:  # pragma: no cover - a bug here must not kill the worker silently
            traceback.print_exc()

    def _admit(self, target: str, record: Record) -> bool:
        """Order by: whether this delivery may run now; if not, it is held back behind its key."""
        key = record.entry.get("key")
        if self.targets[target]["order_by"] is None or key is None:
            return True
        busy = self.busy[target]
        owner = busy.get(key)
        if owner is None or owner == record.entry["delivery"]:
            busy[key] = record.entry["delivery"]
            return True
        self.held[target].setdefault(key, deque()).append(record)
        return False

    def _release(self, target: str, record: Record) -> None:
        key = record.entry.get("key")
        if self.targets[target]["order_by"] is None or key is None:
            return
        self.busy[target].pop(key, None)
        waiting = self.held[target].get(key)
        if waiting:
            following = waiting.popleft()
            if not waiting:
                del self.held[target][key]
            self.busy[target][key] = following.entry["delivery"]
            self.ready[target].put_nowait(following)

    async def _deliver(self, target: str, record: Record) -> None:
        entry = record.entry
        stream = self._stream(target, entry["key"])
        if self._partitioned(target) and self.store.now_ms() >= self.lease_until.get(stream, 0):
            # Its lease ran out before the keeper could renew it: another instance may hold
            # the partition by now. Left pending, for whoever holds it.
            self._settled(target, record)
            return
        if not self._admit(target, record):
            return
        ev = Event.from_cloudevent(entry["event"])
        try:
            await self._call(target, _delivered(ev, entry["transform"], entry["attempt"], entry["key"]))
        except Exception as exc:  # the handler's failure: its class name is the error kind
            kind, message = _describe(exc)
            now = self.store.now_ms()
            errors = [*entry["errors"], {"attempt": entry["attempt"], "kind": kind, "message": message, "at_ms": now}]
            decision = decide(self.targets[target]["retry"], entry["attempt"], kind, now - entry["first_ms"],
                              self.random)
            if decision.retry:
                self._started()
                retry = {**entry, "attempt": entry["attempt"] + 1, "errors": errors}
                await self._persist(lambda: self.store.schedule(stream, retry, now + decision.delay_ms))
                await self._persist(lambda: self.store.ack(stream, GROUP, [record.id]))
                self._settled(target, record)
                self._finished()
                return  # the key stays held until the retry's outcome
            dead = self.targets[target]["dead_letter"]
            if dead is not None and self.targets[target]["on_exhausted"] != "drop":
                history = tuple(Attempt(e["attempt"], e["kind"], e["message"], e["at_ms"]) for e in errors)
                # Once per delivery and attempt: written again (a step retried after its reply was
                # lost, a delivery claimed after a crash), it is not a second dead letter.
                dead_entry = self._dead_entry(ev, target, tuple(entry["routes"]), history, decision.reason)
                await self._persist(lambda: self.store.append_all(
                    [(f"dead.{dead}", dead_entry)], once=f"dead-letter.{entry['delivery']}.{entry['attempt']}",
                    ttl_ms=self.idempotency_window_ms))
        if not self.store.shared:
            await self.store.ack(stream, GROUP, [record.id])
            self._settled(target, record)
            self._release(target, record)
            self._finished()
            return
        # On a shared store the ack is a round trip: the worker goes on while it travels
        # (acks of many deliveries share one), and the key is released once it has landed.
        acking = asyncio.ensure_future(self._persist(lambda: self.store.ack(stream, GROUP, [record.id])))
        self.acking.add(acking)
        acking.add_done_callback(lambda done: self._acked(target, record, done))

    def _acked(self, target: str, record: Record, done: asyncio.Future[int]) -> None:
        self.acking.discard(done)
        if done.cancelled() or done.exception() is not None:
            # Stopped before the store took the ack: the delivery stays pending, for whoever
            # holds its stream next to deliver again (at least once); its key stays held here.
            return
        self._settled(target, record)
        self._release(target, record)
        self._finished()

    async def _persist(self, operation: Callable[[], Awaitable[T]]) -> T:
        """A store operation of a delivery under way, tried again with backoff while the store
        cannot be reached: given up, it would leave the delivery's key held here for good."""
        failures = 0
        while True:
            try:
                return await operation()
            except StoreError as exc:
                failures += 1
                if not self.running:
                    raise
                wait = min(0.05 * 2 ** failures, 5.0)
                print(f"interlock: {exc}; trying again in {wait:.2f} s", file=sys.stderr)
                await asyncio.sleep(wait)

    async def _scheduler(self) -> None:
        last_housekeeping = self.store.now_ms()
        while self.running:
            await self.store.release_due()
            if self.store.now_ms() - last_housekeeping >= self.housekeeping_ms:
                await self.housekeeping()
                last_housekeeping = self.store.now_ms()
            await asyncio.sleep(0.005)

    async def housekeeping(self) -> int:
        """Apply retention: trim acknowledged deliveries older than `retain_delivered_ms`, and
        dead-letter entries older than their dead letter's `retain`. Returns entries dropped."""
        dropped = 0
        for name in self.ready:
            for stream in self._streams(name):
                dropped += await self.store.trim(stream, max_age_ms=self.retain_delivered_ms)
        for name, dead in self.router.artifact["dead_letters"].items():
            if dead.get("retain_ms") is not None:
                dropped += await self.store.trim(f"dead.{name}", max_age_ms=dead["retain_ms"])
        return dropped

    # ---- dead letters -------------------------------------------------------------------

    def _dead_entry(self, ev: Event, target: str | None, routes: tuple[str, ...], attempts: tuple[Attempt, ...],
                    reason: str) -> dict[str, Any]:
        return {"event": ev.to_cloudevent(), "target": target, "routes": list(routes), "reason": reason,
                "attempts": [attrs.asdict(a) for a in attempts], "at_ms": self.store.now_ms()}

    async def _dead_letter(self, name: str, ev: Event, target: str | None, routes: tuple[str, ...],
                           attempts: tuple[Attempt, ...], reason: str) -> None:
        await self.store.append(f"dead.{name}", self._dead_entry(ev, target, routes, attempts, reason))

    async def dead_letters(self, name: str) -> list[DeadLetter]:
        records = await self.store.range(f"dead.{name}")
        return [DeadLetter(str(r.id), name, Event.from_cloudevent(r.entry["event"]), r.entry["target"],
                           tuple(r.entry["routes"]), tuple(Attempt(**a) for a in r.entry["attempts"]),
                           r.entry["reason"], r.entry["at_ms"]) for r in records]

    async def dead_letters_all(self) -> list[DeadLetter]:
        """The entries of every dead letter of the router, the unrouted one included."""
        names = dict.fromkeys([*self.router.artifact["dead_letters"], self.unrouted_dead_letter])
        return [entry for name in names for entry in await self.dead_letters(name)]

    async def redrive(self, name: str, ids: list[str] | None = None) -> int:
        """Deliver dead-lettered events to their target again, from a first attempt; returns how many."""
        chosen = [d for d in await self.dead_letters(name) if ids is None or d.id in ids]
        count = 0
        for dead in chosen:
            if dead.target is None:
                receipt = await self.publish(Event(dead.event.type, dead.event.data))
                count += 0 if receipt.unrouted else 1
            else:
                deliveries = self.router.deliveries(dead.event.type, dead.event.data).get(dead.target, [])
                entry = {"event": dead.event.to_cloudevent(), "target": dead.target, "routes": list(dead.routes),
                         "transform": deliveries[0][1] if deliveries else None, "attempt": 1,
                         "first_ms": self.store.now_ms(), "errors": [],
                         "delivery": f"{dead.event.id}/{dead.target}/redrive-{dead.id}",
                         "key": _key_of(dead.event.data, self.targets[dead.target]["order_by"])}
                self._started()
                await self.store.append(self._stream(dead.target, entry["key"]), entry)
                count += 1
            await self.store.delete(f"dead.{name}", [EntryId.parse(dead.id)])
        return count

    # ---- drain --------------------------------------------------------------------------

    def _started(self) -> None:
        self.outstanding += 1
        self.idle.clear()

    def _finished(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.idle.set()

    async def drain(self, timeout: float | None = None) -> None:
        if self.store.shared:
            await asyncio.wait_for(self._drain_shared(), timeout)
            return
        if self.outstanding and not self.running:
            raise DeliveryError(f"{self.outstanding} deliveries are waiting, but delivery is not running: "
                                "drain inside `async with router:`")
        await asyncio.wait_for(self.idle.wait(), timeout)

    async def _drain_shared(self) -> None:
        """On a shared store, other processes deliver too: wait until no async target has a
        delivery pending or unread and no retry is scheduled, whoever does the work."""
        streams = [s for n, t in self.targets.items() if t["mode"] == "async" for s in self._streams(n)]
        while not await self.store.quiet(streams, GROUP):
            await asyncio.sleep(0.02)


def _delivered(ev: Event, transform: dict[str, Any] | None, attempt: int, key: Any) -> Event:
    if not transform and attempt == ev.attempt and key is None and ev.key is None:
        return ev  # what the handler receives is the event as published
    data = apply_transform(transform, ev.data) if transform else ev.data
    return Event(ev.type, data, id=ev.id, key=key, time=ev.time, attempt=attempt, source=ev.source)


@types.coroutine
def _resume(coroutine: Any, waiting_on: Any, context: contextvars.Context) -> Generator[Any, Any, Any]:
    """Go on running a coroutine that has already run its first step and is waiting on
    `waiting_on`, exactly as `await` would have, each step in `context`: what the task
    sends or throws in goes to the coroutine, what the coroutine waits on goes to the task."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:
            try:
                waiting_on = context.run(coroutine.throw, exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = context.run(coroutine.send, sent)
            except StopIteration as done:
                return done.value


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, asyncio.TimeoutError):
        return "TimeoutError", "the attempt took longer than the target's timeout"
    return type(exc).__name__, str(exc)


__all__ = ["Attempt", "DeadLetter", "DeliveryError", "Engine", "EventError", "Receipt", "apply_transform"]
