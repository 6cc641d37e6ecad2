"""One delivery attempt of an async target: the handler is called; then the delivery is
acknowledged (it succeeded), its retry scheduled (the policy says so), or it goes to the
target's dead letter with every attempt's error (the policy gives up).

Each store step of a delivery under way is tried again with backoff until the store takes
it (`persist`): given up, it would leave the delivery's key held here for good. The order
of the steps makes a crash between two of them repeat a step, never skip one: the retry is
scheduled (or the dead letter written) before the delivery is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .acks import Acker
from .dead_letters import dead_entry, dead_stream
from .entry import pack
from .event import Event
from .handlers import Handlers, cancelling, failure
from .inflight import InHand, Outstanding, claim_idle_of
from .lanes import finished, is_fast
from .outcomes import Attempt
from .partitions import Partitions
from .pool import TargetPool
from .retry import decide
from .scheduler import Scheduler
from .store import EventStore, Record, StoreError
from .supervisor import Supervisor, transient
from .telemetry import Telemetry
from .transform import delivered

log = logging.getLogger(__name__)
T = TypeVar("T")


class Deliverer:
    def __init__(self, *, store: EventStore, targets: dict[str, dict[str, Any]], handlers: Handlers, acker: Acker,
                 scheduler: Scheduler, pools: dict[str, TargetPool], partitions: dict[str, Partitions],
                 in_hand: InHand, outstanding: Outstanding, supervisor: Supervisor, random: Callable[[], float],
                 idempotency_window_ms: int, claim_idle_ms: int, acked: set[str], telemetry: Telemetry) -> None:
        self.store = store
        self.targets = targets
        self.handlers = handlers
        self.acker = acker
        self.scheduler = scheduler
        self.pools = pools
        self.partitions = partitions
        self.in_hand = in_hand
        self.outstanding = outstanding
        self.supervisor = supervisor
        self.random = random
        self.idempotency_window_ms = idempotency_window_ms
        self.claim_idle_ms = claim_idle_ms
        self.acked = acked  # streams with deliveries acknowledged (for retention)
        self.telemetry = telemetry
        self.running = False

    def _leave(self, stream: str, record: Record) -> None:
        """Not ours to deliver after all: left pending in the store, for whoever may claim it.
        A partition whose lease only looked run out (a renewal that came late) stays this
        process's, and no one else claims what it left: it is looked for again at the next
        read, if the partition is still held then."""
        self.in_hand.drop(stream, record.id)
        target = record.entry["target"]
        self.pools[target].release(record)
        partitions = self.partitions.get(target)
        if partitions is not None:
            partitions.recovering.add(stream)

    def _may_run(self, stream: str, record: Record, target: str) -> bool:
        now = self.store.now_ms()
        partitions = self.partitions.get(target)
        if partitions is not None:
            # Its lease may have run out before the keeper could renew it: another instance
            # may hold the partition by now.
            return partitions.holds(stream, now)
        if self.store.shared:
            # Waited here so long that it could not be done before another instance may claim
            # it as abandoned: left to that claim (at most one delivery of it at a time). Done
            # means its handler ran (at most its timeout) and its acknowledgement reached the
            # store; and the time it waited is counted from when this instance took the read's
            # reply, which a busy event loop may take late, while the store counts from when
            # it sent it. A quarter of the claim delay is kept for those two (with 300 ms and a
            # 50 ms timeout, one that waited 250 ms here was delivered, then claimed as well).
            read = self.in_hand.read_at(stream, record.id)
            idle_ms = claim_idle_of(self.claim_idle_ms, self.targets[target])
            return read is None or now - read + self.targets[target]["timeout_ms"] + idle_ms // 4 < idle_ms
        return True

    async def deliver(self, stream: str, record: Record) -> None:
        """Deliver one record; whatever goes wrong here, it ends acknowledged, retried,
        dead-lettered or left pending (a bug: logged, reported, and its key let go)."""
        try:
            await self._deliver(stream, record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("delivery %s of %s failed; it stays pending", record.id, stream, exc_info=exc,
                      extra={"stream": stream})
            self.supervisor.fault, self.supervisor.fault_task = exc, f"a delivery of {stream}"
            self._leave(stream, record)

    async def _deliver(self, stream: str, record: Record) -> None:
        entry = record.entry
        target = entry["target"]
        if not self._may_run(stream, record, target):
            self._leave(stream, record)
            return
        ev: Event = entry["event"]
        extra = {"target": target, "event_id": ev.id, "attempt": entry["attempt"]}
        telemetry = self.telemetry
        span = telemetry.delivering(ev, target, entry["attempt"], entry["routes"]) if telemetry.active() else None
        try:
            await self.handlers.call(target, delivered(ev, entry["transform"], entry["attempt"], entry["key"]))
        except BaseException as exc:  # the handler's failure, whatever it is: its class name the kind
            if isinstance(exc, KeyboardInterrupt | GeneratorExit) or (
                    isinstance(exc, asyncio.CancelledError) and cancelling()):
                if span is not None:
                    span.end(target, "cancelled")
                raise  # delivery stops: the delivery stays pending
            failed = failure(exc)
            kind, message = failed.kind, failed.message
            now = self.store.now_ms()
            error: dict[str, Any] = {"attempt": entry["attempt"], "kind": kind, "message": message, "at_ms": now}
            if failed.status is not None:
                error["status"] = failed.status
            errors = [*entry["errors"], error]
            decision = decide(self.targets[target]["retry"], entry["attempt"], failed.kinds, now - entry["first_ms"],
                              self.random, failed.retry_after_ms)
            dead = self.targets[target]["dead_letter"]
            if self.targets[target]["on_exhausted"] == "drop":
                dead = None
            if span is not None:
                span.end(target, "retry" if decision.retry else "dead_letter" if dead else "dropped", kind)
            if decision.retry:
                retry = {**entry, "attempt": entry["attempt"] + 1, "errors": errors}
                due = now + decision.delay_ms
                log.info("%s failed (%s: %s); retry in %d ms", target, kind, message, decision.delay_ms, extra=extra)
                self.outstanding.started()
                packed = pack(retry)
                await self.persist("scheduling a retry", lambda: self.store.schedule(stream, packed, due))
                self.scheduler.scheduled(stream, due)
                # The key stays held until the retry's outcome.
                self._settled(stream, record, release=False)
                return
            if dead is not None:
                history = tuple(Attempt(e["attempt"], e["kind"], e["message"], e["at_ms"], e.get("status"))
                                for e in errors)
                entry_out = dead_entry(ev, target, tuple(entry["routes"]), history, decision.reason, now)
                log.warning("%s gave up on %s (%s); dead letter %s", target, ev.id, decision.reason, dead,
                            extra=extra)
                # Once per delivery and attempt: written again (a step retried after its reply was
                # lost, a delivery claimed after a crash), it is not a second dead letter.
                await self.persist("writing a dead letter", lambda: self.store.append_all(
                    [(dead_stream(dead), entry_out)], once=f"dead-letter.{entry['delivery']}.{entry['attempt']}",
                    ttl_ms=self.idempotency_window_ms))
            else:
                log.warning("%s gave up on %s (%s); dropped", target, ev.id, decision.reason, extra=extra)
        else:
            if span is not None:
                span.end(target, "delivered", latency_ms=self.store.now_ms() - entry["first_ms"])
        self._settled(stream, record, release=True)

    def _settled(self, stream: str, record: Record, *, release: bool) -> None:
        """Acknowledged (batched), then done; a delivery of the memory store's fast path has
        no entry to acknowledge: done at once."""
        if is_fast(record):
            finished(record)
            self._done(stream, record, release=release)
        else:
            self.acker.add(stream, record.id, lambda: self._done(stream, record, release=release))

    def _done(self, stream: str, record: Record, *, release: bool) -> None:
        """The delivery's acknowledgement has landed."""
        self.in_hand.drop(stream, record.id)
        self.acked.add(stream)
        if release:
            self.pools[record.entry["target"]].release(record)
        self.outstanding.finished()

    async def persist(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """A store step of a delivery under way, tried again with backoff until the store takes
        it (or delivery stops: the delivery then stays pending, to be delivered again)."""
        failures = 0
        while True:
            try:
                return await operation()
            except StoreError as exc:
                if not self.running:
                    raise
                failures += 1
                wait = min(0.05 * 2 ** failures, 5.0)
                if transient(exc):
                    log.warning("%s: %s; trying again in %.2f s", what, exc, wait)
                else:
                    log.error("%s: %s; trying again in %.2f s", what, exc, wait)
                    self.supervisor.fault, self.supervisor.fault_task = exc, what
                await asyncio.sleep(wait)
