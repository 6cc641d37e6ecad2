"""`interlock simulate`: a project's events through the real runtime, with synthetic handlers.

Every target gets a handler that takes `--slow TARGET=MS` milliseconds and fails with
probability `--fail TARGET=RATE` (raising `ConnectionError`, which every policy retries
unless its `retry_on` says otherwise; an HTTP target fails as a 503 would: `http.503`,
`http.5xx`; nothing is sent over the network). A target that `emits` event types publishes
one of each (its data made from the type's schema) after each delivery, as the service
would. The events are published in order, delivery runs until drained, and a table per
target says what became of each delivery: delivered, retried, dead-lettered, dropped (an
async target given up on without a dead letter: `on_exhausted drop`), failed (a sync target
that failed after its retries with no dead letter to keep it: only its publisher was told),
how many events it emitted (those published: one its schema refused is listed), and the
publish-to-handler latency of the deliveries that succeeded. Events their schema refuses
are listed, and make the exit code 1.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

import attrs
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from interlock.dsl.transform import did_you_mean
from interlock.event_input import EventInputError, event_of, parse
from interlock.runtime.event import Event, EventError
from interlock.runtime.outcomes import HttpError
from interlock.runtime.router import Router


class SimulationInputError(ValueError):
    """Bad input to a simulation: the message says which file, line or option."""


def parse_rates(options: Sequence[str], flag: str, targets: Sequence[str], *, fraction: bool) -> dict[str, float]:
    """`TARGET=VALUE` options, checked: the target exists, the value is a number in range."""
    out: dict[str, float] = {}
    for option in options:
        target, sep, text = option.partition("=")
        known = ", ".join(sorted(targets))
        if not sep and target in targets:
            what = "a rate between 0 and 1" if fraction else "milliseconds"
            raise SimulationInputError(f"{flag} {option!r}: the value is missing: {flag} {target}=VALUE, VALUE {what}")
        if not sep or target not in targets:
            hint = did_you_mean(target, targets)
            raise SimulationInputError(
                f"{flag} {option!r}: expected TARGET=VALUE with a target of the project ({known})"
                + (f"; {hint}" if hint else ""))
        try:
            value = float(text)
        except ValueError:
            raise SimulationInputError(f"{flag} {option!r}: {text!r} is not a number") from None
        if value < 0 or (fraction and value > 1) or value != value:
            limit = "between 0 and 1" if fraction else "0 or more"
            raise SimulationInputError(f"{flag} {option!r}: the value must be {limit}")
        out[target] = value
    return out


def read_events(path: str) -> list[Event]:
    """One event per line: `{"type": ..., "data": {...}}` (optionally `"id"`), or a CloudEvent."""
    events = []
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise SimulationInputError(f"cannot read `{path}`: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SimulationInputError(f"`{path}` is not UTF-8 text") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            events.append(event_of(parse(line, "the event")))
        except (EventInputError, EventError) as exc:
            raise SimulationInputError(f"{path}:{number}: {exc}") from None
    return events


@attrs.define
class TargetStats:
    delivered: int = 0
    retried: int = 0
    failed_attempts: int = 0
    dropped: int = 0  # async deliveries given up on with `on_exhausted drop` (or no dead letter)
    failed: int = 0  # sync deliveries that failed after their retries: the publisher was told
    emitted: int = 0  # events this target published (its `emits`), after a delivery
    latencies_ms: list[float] = attrs.Factory(list)


@attrs.frozen
class Result:
    stats: dict[str, TargetStats]
    dead_lettered: dict[str, int]
    unrouted: int
    refused: list[str]
    seconds: float


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


#: The most events `emits` may add to a run (each delivery to an emitting target publishes).
MAX_EMITTED = 100_000


def example(schema: dict[str, Any] | None) -> Any:
    """Data of the shape `schema` declares (each required field, a value of its type): what a
    target's emitted event carries in a simulation."""
    if schema is None:
        return {}
    kind = schema["type"]
    if kind == "object":
        return {name: example(field) for name, field in schema["fields"].items() if not field.get("optional")}
    return {"list": [], "string": "simulated", "int": 0, "float": 0.0, "bool": False,
            "timestamp": "2026-01-01T00:00:00Z"}.get(kind, "simulated")  # (`any`: a string will do)


async def simulate(router: Router, events: list[Event], fail: dict[str, float], slow: dict[str, float],
                   *, seed: int = 0, progress: Progress | None = None) -> Result:
    rng = random.Random(seed)
    stats = {name: TargetStats() for name in router.targets}
    published: dict[str, float] = {}
    succeeded: set[tuple[str, str]] = set()  # (event id, target)
    routed: set[tuple[str, str]] = set()
    unrouted = 0
    refused: list[str] = []
    emitted = 0

    async def publish(event: Event) -> bool:
        nonlocal unrouted
        published[event.id] = time.perf_counter()
        try:
            receipt = await router.publish(event)
        except ValueError as exc:  # a schema violation: refused, nothing stored
            refused.append(f"{event.type} {event.id}: {exc}")
            return False
        unrouted += receipt.unrouted
        routed.update((event.id, target) for target in receipt.targets)
        for target in receipt.failures:
            if router.targets[target]["dead_letter"] is None or router.targets[target]["on_exhausted"] == "drop":
                stats[target].failed += 1  # (else it is counted as dead-lettered)
        return True

    for name in router.targets:
        async def handle(event: Event, name: str = name) -> dict[str, str]:
            nonlocal emitted
            s = stats[name]
            if event.attempt > 1:
                s.retried += 1
            if slow.get(name):
                await asyncio.sleep(slow[name] / 1000)
            if rng.random() < fail.get(name, 0.0):
                s.failed_attempts += 1
                if router.targets[name].get("http"):  # as a server error would fail it
                    raise HttpError(("http.503", "http.5xx"), f"simulated failure of `{name}`", status=503)
                raise ConnectionError(f"simulated failure of `{name}`")
            s.delivered += 1
            s.latencies_ms.append((time.perf_counter() - published[event.id]) * 1000)
            if (event.id, name) not in succeeded:
                succeeded.add((event.id, name))
                for event_type in router.targets[name]["emits"]:  # what the service would publish
                    if emitted < MAX_EMITTED:
                        emitted += 1
                        event_out = Event(event_type, example(router.artifact["events"].get(event_type)))
                        s.emitted += await publish(event_out)
            return {"simulated": name}
        router.handler(name)(handle)

    task = progress.add_task("publishing", total=len(events)) if progress else None
    start = time.perf_counter()
    async with router:
        for event in events:
            await publish(event)
            if progress is not None and task is not None:
                progress.advance(task)
        if progress is not None and task is not None:
            progress.update(task, description="delivering")
        await router.drain()
    seconds = time.perf_counter() - start
    dead: dict[str, int] = {}
    dead_pairs = set()
    for entry in await router.engine.dead_letters_all():
        if entry.target is not None:
            dead[entry.target] = dead.get(entry.target, 0) + 1
            dead_pairs.add((entry.event.id, entry.target))
    for _event_id, target in routed - succeeded - dead_pairs:
        if router.targets[target]["mode"] == "async":
            stats[target].dropped += 1
    return Result(stats, dead, unrouted, refused, seconds)


def report(console: Console, result: Result, events: int) -> None:
    table = Table(title=f"{events} events in {result.seconds:.2f} s", title_justify="left")
    columns = ("target", "delivered", "retried", "dead-lettered", "dropped", "failed", "emitted", "p50 ms", "p99 ms")
    for column in columns:
        table.add_column(column, justify="left" if column == "target" else "right")
    for name, s in result.stats.items():
        p50, p99 = _percentile(s.latencies_ms, 0.5), _percentile(s.latencies_ms, 0.99)
        table.add_row(name, str(s.delivered), str(s.retried), str(result.dead_lettered.get(name, 0)), str(s.dropped),
                      str(s.failed), str(s.emitted), "-" if p50 is None else f"{p50:.2f}",
                      "-" if p99 is None else f"{p99:.2f}")
    console.print(table)
    console.print(f"unrouted (kept in their dead letter): {result.unrouted}")
    for line in result.refused:
        console.print(f"refused: {line}", markup=False)
    if result.refused:
        console.print(f"{len(result.refused)} event(s) refused by their schema: exit 1", markup=False)


def run(router: Router, events_path: str, fail: Sequence[str], slow: Sequence[str], seed: int,
        console: Console) -> Result:
    events = read_events(events_path)
    targets = list(router.targets)
    fail_rates = parse_rates(fail, "--fail", targets, fraction=True)
    slow_ms = parse_rates(slow, "--slow", targets, fraction=False)
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        result = asyncio.run(simulate(router, events, fail_rates, slow_ms, seed=seed, progress=progress))
    report(console, result, len(events))
    return result
