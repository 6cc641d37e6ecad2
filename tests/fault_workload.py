"""A workload to run while a fault is injected, and the invariants delivery must keep through it.

The project (`PROJECT`, written by `write_project`) routes `job.*` events to three targets:
`plain` (async, unordered), `ordered` (async, `order by k`, default concurrency) and
`direct` (sync: called inside `publish`), all with short retries and the dead letter `dlq`;
`sync.*` events go to `direct` alone. Each event's data says its fate per target
(`fates(n)`): "ok", "fail" (always raises) or "flaky" (raises on its first
`FLAKY_FAILURES` attempts, then succeeds). `Recorder`'s handlers act the fates out and
remember every call and every success in this process's memory, never in Redis (Redis may
lose data).

`Workload(router, fault=...).run()` publishes events `ev-0`.. one at a time, a few ms apart,
sets the fault's trigger mid-stream, re-publishes every event whose publish raised, with the
same id, once the fault has cleared (the documented advice: a publish that raised stored
nothing and remembered nothing), drains with a time bound and asks the engine whether its
background tasks are alive. `check_invariants` then says what went wrong:

- every accepted (event, target) pair is handled or dead-lettered;
- an event whose fate is "fail" on a target is never handled there, and one that does not
  fail is never dead-lettered there;
- on `ordered`, each key's events are first handled in the order they were accepted
  (repeats are dropped: delivery is at least once);
- `drain` returned within its bound, every event was accepted in the end, and
  `Engine.healthy()` is True.

"Accepted" means that a publish of the id returned a receipt; a re-publish may say
`duplicate=True` when an earlier, raising publish had landed after all, and then that one
counts. With `required_after`, only events accepted by a publish call that began after that
moment (`time.monotonic()`) must be delivered: a server restarted without persistence has
lost what it held before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import traceback
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from redis_server import Fault

import interlock

log = logging.getLogger("faults.workload")
T = TypeVar("T")

PROJECT = """
dead_letter dlq

# Unordered, with a few workers.
target plain { mode async, timeout 1s, concurrency 4, dead_letter dlq,
               retry { attempts 4 backoff fixed 20ms } }

# Ordered by key, with the default concurrency (the defaults matter).
target ordered { mode async, timeout 1s, order by k, dead_letter dlq,
                 retry { attempts 4 backoff fixed 20ms } }

# Sync: called inside publish, by the publishing process.
target direct { mode sync, timeout 1s, dead_letter dlq,
                retry { attempts 4 backoff fixed 20ms } }

route jobs { on job.* to plain, ordered, direct }
route sync_only { on sync.* to direct }
"""

TARGETS = ("plain", "ordered", "direct")
DEAD_LETTER = "dlq"
KEYS = 7  # event n has the ordering key f"k{n % KEYS}"
FLAKY_FAILURES = 2  # a flaky handler fails this many attempts (fewer than the policy's 4), then succeeds

def dead_letter_stream_key(name: str) -> str:
    """The Redis key of dead letter `name`'s stream, `interlock:{dead.NAME}` (docs/deploy.md,
    "Key layout"): the one place the suite knows the store's key layout."""
    return f"interlock:{{dead.{name}}}"


def write_project(folder: Path) -> Path:
    """`PROJECT` as `folder/jobs.route`."""
    path = folder / "jobs.route"
    path.write_text(PROJECT)
    return path


def fates(n: int) -> dict[str, str]:
    """Event n's fate on each target: about a tenth fail, a sixth are flaky, the rest are ok."""
    return {
        "plain": "fail" if n % 10 == 3 else "flaky" if n % 10 == 6 else "ok",
        "ordered": "fail" if n % 13 == 5 else "flaky" if n % 6 == 1 else "ok",
        "direct": "fail" if n % 11 == 7 else "flaky" if n % 9 == 2 else "ok",
    }


def event_data(n: int, fate: dict[str, str] | None = None) -> dict[str, Any]:
    """The data of event `ev-n`: its number, its ordering key and its fates."""
    return {"n": n, "k": f"k{n % KEYS}", "fate": fate if fate is not None else fates(n)}


class HandlerFailure(ConnectionError):
    """What a handler raises to act out a fate (retryable by every policy of the project)."""


@dataclass(frozen=True)
class Handled:
    """One handler call that succeeded."""

    target: str
    id: str
    key: Any  # the delivery's ordering key (None but on `ordered`)
    n: int
    attempt: int
    at: float  # time.monotonic()


class Recorder:
    """Handlers that act out each event's fate, and what they saw, in process memory."""

    def __init__(self) -> None:
        self.handled: list[Handled] = []
        self.calls: list[tuple[str, str, int]] = []  # (target, event id, attempt), failures included

    def register(self, router: interlock.Router, targets: Iterable[str] = TARGETS) -> Recorder:
        for target in targets:
            router.handler(target)(self.handler(target))
        return self

    def handler(self, target: str) -> Any:
        async def handle(event: interlock.Event) -> dict[str, Any]:
            self.calls.append((target, event.id, event.attempt))
            fate = event.data.get("fate", {}).get(target, "ok")
            if fate == "fail" or (fate == "flaky" and event.attempt <= FLAKY_FAILURES):
                raise HandlerFailure(f"{target} acts out fate {fate!r} (attempt {event.attempt})")
            self.handled.append(Handled(target, event.id, event.key, event.data.get("n", -1), event.attempt,
                                        time.monotonic()))
            return {"handled": event.id}

        handle.__name__ = f"handle_{target}"
        return handle

    def pairs(self) -> set[tuple[str, str]]:
        """(target, event id) of every success."""
        return {(h.target, h.id) for h in self.handled}


@dataclass
class Publication:
    """One event of the workload and what its publishes came to."""

    id: str
    n: int
    type: str
    data: dict[str, Any]
    receipt: interlock.Receipt | None = None  # the publish that returned
    accepted_at: float | None = None  # when the call that returned began (time.monotonic())
    seq: int | None = None  # the number of the publish call that stored it; None when unknown (see below)
    failures: list[str] = field(default_factory=list)  # what each publish that raised said

    @property
    def accepted(self) -> bool:
        return self.receipt is not None


@dataclass
class Outcome:
    """What a run of the workload came to; `check_invariants` judges it."""

    publications: dict[str, Publication]
    recorder: Recorder
    errors: list[BaseException] = field(default_factory=list)  # every exception seen, for the password checks
    violations: list[str] = field(default_factory=list)  # found while running
    drain_seconds: float | None = None
    fault: Fault | None = None

    def error_texts(self) -> list[str]:
        """Each exception's full text: type, message, repr and traceback, with its causes and contexts."""
        texts = []
        for exc in self.errors:
            seen: BaseException | None = exc
            while seen is not None:
                texts += [repr(seen), str(seen), "".join(traceback.format_exception(seen))]
                seen = seen.__cause__ or seen.__context__
        return texts


class Workload:
    """Publishes `events` events `ev-0`.. through `router` (its handlers registered by
    `recorder`), `pace` seconds apart; sets `fault.trigger` just before event `fault_at`."""

    def __init__(self, router: interlock.Router, *, events: int = 300, pace: float = 0.01,
                 fault: Fault | None = None, fault_at: int = 100, recorder: Recorder | None = None,
                 drain_timeout: float = 20.0, publish_timeout: float = 10.0, republish_for: float = 20.0,
                 stop_timeout: float = 5.0) -> None:
        self.router = router
        self.events = events
        self.pace = pace
        self.fault = fault
        self.fault_at = fault_at
        self.recorder = recorder if recorder is not None else Recorder().register(router)
        self.drain_timeout = drain_timeout
        self.publish_timeout = publish_timeout
        self.republish_for = republish_for
        self.stop_timeout = stop_timeout
        self.outcome = Outcome({}, self.recorder, fault=fault)
        self.calls = 0  # publish calls made, in order
        self.failing = False  # whether the last publish raised

    # ---- publishing ----------------------------------------------------------------------

    def publication(self, n: int, event_type: str = "job.run", data: dict[str, Any] | None = None) -> Publication:
        """The record of event `ev-n` (made on first use)."""
        event_id = f"ev-{n}"
        if event_id not in self.outcome.publications:
            body = data if data is not None else event_data(n)
            self.outcome.publications[event_id] = Publication(event_id, n, event_type, body)
        return self.outcome.publications[event_id]

    async def publish(self, publication: Publication) -> interlock.Receipt | None:
        """One publish of the event, bounded in time; its receipt, or None when it raised."""
        self.calls += 1
        call, started = self.calls, time.monotonic()
        try:
            receipt = await asyncio.wait_for(
                self.router.publish(publication.type, publication.data, id=publication.id), self.publish_timeout)
        except Exception as exc:
            self.outcome.errors.append(exc)
            publication.failures.append(f"{type(exc).__name__}: {exc}")
            # The first of a run of failures on the timeline; the others in the debug log.
            log.log(logging.DEBUG if self.failing else logging.INFO, "publish of %s raised %s after %.2f s",
                    publication.id, type(exc).__name__, time.monotonic() - started)
            self.failing = True
            return None
        if self.failing or time.monotonic() - started > 1:
            log.info("publish of %s returned after %.2f s", publication.id, time.monotonic() - started)
        self.failing = False
        if publication.receipt is None:
            publication.receipt, publication.accepted_at = receipt, started
            # A duplicate landed in an earlier call that raised: where it stands is unknown. So
            # does a publish that raised on a store whose publishes are not all or nothing (a
            # Redis Cluster): it may have reached some targets then.
            partly = bool(publication.failures) and not self.router.store.atomic_publish
            publication.seq = None if receipt.duplicate or partly else call
        return receipt

    async def publish_until_accepted(self, publication: Publication, deadline: float) -> bool:
        """Publish again, same id, until a publish returns or `deadline` (time.monotonic()) passes."""
        while time.monotonic() < deadline:
            if await self.publish(publication) is not None:
                return True
            await asyncio.sleep(0.2)
        return False

    async def stream(self) -> None:
        """The events one at a time, `pace` apart, the fault triggered mid-stream; then, once the
        fault has cleared, every event whose publish raised again, with the same id."""
        failed: list[Publication] = []
        for n in range(self.events):
            if self.fault is not None and n == self.fault_at:
                self.fault.trigger.set()
            publication = self.publication(n)
            if await self.publish(publication) is None:
                failed.append(publication)
            await asyncio.sleep(self.pace)
        await self.fault_cleared()
        deadline = time.monotonic() + self.republish_for
        for publication in failed:
            await self.publish_until_accepted(publication, deadline)
        log.info("published %d events in %d calls; %d publishes raised and were published again",
                 len(self.outcome.publications), self.calls, len(failed))

    async def fault_cleared(self, timeout: float = 60.0) -> None:
        if self.fault is None:
            return
        deadline = time.monotonic() + timeout
        while not self.fault.cleared.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.fault.error is not None:
            self.outcome.violations.append(f"the fault `{self.fault.name}` failed: {self.fault.error!r}")
        elif self.fault.started_at is None:
            self.outcome.violations.append(f"the fault `{self.fault.name}` was never injected")

    # ---- settling ------------------------------------------------------------------------

    async def settle(self) -> None:
        """Drain within `drain_timeout`, then ask the engine whether its background tasks live."""
        started = time.monotonic()
        log.info("draining (at most %.0f s)", self.drain_timeout)
        try:
            await self.router.drain(self.drain_timeout)
            self.outcome.drain_seconds = time.monotonic() - started
            log.info("drain returned in %.2f s", self.outcome.drain_seconds)
        except TimeoutError:
            self.outcome.violations.append(f"drain did not return within {self.drain_timeout} s")
        except Exception as exc:
            self.outcome.errors.append(exc)
            self.outcome.violations.append(f"drain raised {type(exc).__name__}: {exc}")
        self.outcome.violations += engine_health(self.router)

    async def run(self) -> Outcome:
        """Start the router, stream the events, settle, stop (bounded): the outcome."""
        try:
            await asyncio.wait_for(self.router.__aenter__(), self.stop_timeout)
            try:
                await self.stream()
                await self.settle()
            finally:
                await self.stop()
        finally:
            if self.fault is not None:
                self.fault.join()
        return self.outcome

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.router.__aexit__(None, None, None), self.stop_timeout)
        except TimeoutError:
            self.outcome.violations.append(f"stopping the router took more than {self.stop_timeout} s")
        except Exception as exc:
            self.outcome.errors.append(exc)
            self.outcome.violations.append(f"stopping the router raised {type(exc).__name__}: {exc}")
        close = getattr(self.router.store, "close", None)
        if close is not None:
            try:
                await asyncio.wait_for(close(), self.stop_timeout)
            except Exception as exc:  # the server may be down in a failing run
                self.outcome.errors.append(exc)
        self.outcome.violations += await cancel_leftover_tasks(3.0)


async def cancel_leftover_tasks(timeout: float) -> list[str]:
    """Cancel every task of the loop but the caller's, and wait up to `timeout` for them: a task
    that does not end when cancelled (it swallowed the cancellation, or waits on something
    that never comes) is a violation, named with where it waits. Without this, `asyncio.run`
    would wait for such a task forever."""
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in leftover:
        task.cancel()
    if not leftover:
        return []
    await asyncio.wait(leftover, timeout=timeout)
    return [f"a task did not end within {timeout} s of being cancelled after the router stopped: {where(task)}"
            for task in leftover if not task.done()]


def where(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its chain of awaits, outermost first."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            frames.append(type(awaited).__name__)
            break
        frames.append(f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " -> ".join(frames)


def run_bounded(coroutine: Coroutine[Any, Any, T], *, cancel_timeout: float = 1.0) -> T:
    """`asyncio.run`, but a task that will not end when cancelled at the end does not make it
    wait forever: the loop is closed after `cancel_timeout` all the same."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=cancel_timeout))
        stuck = [task for task in leftover if not task.done()]
        if stuck:
            log.warning("closing the loop with %d tasks that did not end when cancelled: %s", len(stuck),
                        "; ".join(where(task) for task in stuck))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def engine_health(router: interlock.Router) -> list[str]:
    """Problems with the engine's background tasks: `Engine.healthy()` must exist and be True.
    Tasks of the engine that ended with an exception are named too, to say why."""
    problems = []
    engine = router.engine
    healthy = getattr(engine, "healthy", None)
    if healthy is None:
        problems.append("Engine.healthy() does not exist: the engine must say (True/False) whether every "
                        "supervised background task is alive")
    elif not healthy():
        problems.append("Engine.healthy() is False after drain: a supervised background task is not alive")
    for task in getattr(engine, "tasks", None) or []:
        if isinstance(task, asyncio.Task) and task.done() and not task.cancelled() and task.exception():
            coroutine = getattr(task.get_coro(), "__qualname__", task.get_name())
            problems.append(f"background task {coroutine} died: {task.exception()!r}")
    return problems


# ---- the invariants --------------------------------------------------------------------------


def _examples(items: Iterable[Any], limit: int = 8) -> str:
    items = sorted(items, key=str)
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(map(str, items[:limit])) + more


def read_dead_letters(router: interlock.Router, outcome: Outcome) -> list[Any]:
    """The entries of every dead letter of the router (`router.dead_letters(NAME)`, the unrouted
    one included); an error reading them is a violation (and an error seen)."""
    names = dict.fromkeys([*router.artifact["dead_letters"], router.artifact.get("unrouted") or "unrouted"])
    entries = []
    for name in names:
        try:
            entries += router.dead_letters(name)
        except Exception as exc:
            outcome.errors.append(exc)
            outcome.violations.append(f"router.dead_letters({name!r}) raised {type(exc).__name__}: {exc}")
    return entries


def check_invariants(router: interlock.Router, outcome: Outcome, *, required_after: float | None = None) -> list[str]:
    """Every violation of the invariants (see the module's docstring), as readable lines."""
    dead = read_dead_letters(router, outcome)
    problems = list(outcome.violations)
    publications = outcome.publications
    refused = [p for p in publications.values() if not p.accepted]
    if refused:
        problems.append(f"{len(refused)} events were never accepted, every publish of them raised: " + "; ".join(
            f"{p.id} ({len(p.failures)} times, last: {p.failures[-1] if p.failures else 'never published'})"
            for p in refused[:3]))
    handled = outcome.recorder.pairs()
    dead_pairs = {(entry.target, entry.event.id) for entry in dead}

    required = [p for p in publications.values() if p.accepted and
                (required_after is None or (p.accepted_at is not None and p.accepted_at >= required_after))]
    expected = {(target, p.id) for p in required for target in router.match(p.type, p.data)}
    missing = expected - handled - dead_pairs
    if missing:
        by_target = Counter(target for target, _ in missing)
        problems.append(f"{len(missing)} of {len(expected)} accepted (target, event) pairs were neither handled "
                        f"nor dead-lettered (per target: {dict(sorted(by_target.items()))}): {_examples(missing)}")

    def fate(target: str | None, event_id: str, data: dict[str, Any]) -> str:
        source = publications[event_id].data if event_id in publications else data
        return str(source.get("fate", {}).get(target, "ok"))

    wrongly_handled = {(h.target, h.id) for h in outcome.recorder.handled
                       if h.id in publications and fate(h.target, h.id, {}) == "fail"}
    if wrongly_handled:
        problems.append(f"{len(wrongly_handled)} deliveries whose handler always fails were recorded as handled: "
                        f"{_examples(wrongly_handled)}")
    wrongly_dead = {(entry.target, entry.event.id) for entry in dead
                    if entry.target is not None and fate(entry.target, entry.event.id, entry.event.data) != "fail"}
    if wrongly_dead:
        problems.append(f"{len(wrongly_dead)} deliveries were dead-lettered though their handler succeeds by "
                        f"attempt {FLAKY_FAILURES + 1}: {_examples(wrongly_dead)}")
    problems += order_violations(outcome, {p.id for p in required})
    return problems


def order_violations(outcome: Outcome, required: set[str], target: str = "ordered") -> list[str]:
    """On an ordered target, per key, the first handling of each event must follow the order
    in which the events were accepted (events whose place is unknown are left out)."""
    first: dict[str, Handled] = {}
    for handled in outcome.recorder.handled:
        if handled.target == target and handled.id not in first:
            first[handled.id] = handled
    per_key: dict[Any, list[Publication]] = {}
    for event_id in first:  # dicts keep insertion order: the order of first handling
        publication = outcome.publications.get(event_id)
        if publication is not None and publication.seq is not None and event_id in required:
            per_key.setdefault(first[event_id].key, []).append(publication)
    problems = []
    for key, handled in sorted(per_key.items(), key=lambda item: str(item[0])):
        for before, after in itertools.pairwise(handled):
            assert before.seq is not None and after.seq is not None
            if after.seq < before.seq:
                problems.append(f"`{target}` key {key!r}: {after.id} (publish #{after.seq}) was first handled after "
                                f"{before.id} (publish #{before.seq}), out of order")
                break
    return problems


def assert_invariants(router: interlock.Router, outcome: Outcome, *, required_after: float | None = None) -> None:
    """`check_invariants`, as one AssertionError listing every violation."""
    problems = check_invariants(router, outcome, required_after=required_after)
    accepted = sum(p.accepted for p in outcome.publications.values())
    summary = (f"{len(outcome.publications)} events, {accepted} accepted, {len(outcome.recorder.handled)} handled, "
               f"drain {'timed out' if outcome.drain_seconds is None else f'{outcome.drain_seconds:.2f} s'}")
    assert not problems, "delivery broke its promises (" + summary + "):\n- " + "\n- ".join(problems)
    log.info("invariants hold: %s", summary)
