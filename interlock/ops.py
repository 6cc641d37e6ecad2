"""What the ops commands (`status`, `dead-letters`, `publish`) share: checking the names an
operator types against the project, running against a live store and closing it, asking
before a change, and showing times.

These commands look at (and, for `dead-letters redrive|purge` and `publish`, change) a store
that running instances deliver from; they never start delivery themselves.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from rich.console import Console

from interlock.dsl.transform import did_you_mean
from interlock.runtime.inflight import GROUP
from interlock.runtime.router import Router

T = TypeVar("T")


class OpsError(Exception):
    """An ops command used wrongly (an unknown name, a bad filter, a refused change): exit 2,
    the message shown."""


def dead_letter_names(router: Router) -> list[str]:
    """The project's dead letters, the one of unrouted events included, sorted."""
    return sorted({*router.artifact["dead_letters"], router.engine.unrouted_dead_letter})


def check_dead_letter(router: Router, name: str) -> str:
    """`name` if it is a dead letter of the project, else an OpsError with a did-you-mean."""
    names = dead_letter_names(router)
    if name not in names:
        hint = did_you_mean(name, names)
        raise OpsError(f"no dead letter `{name}` in this project; "
                       + (hint or f"its dead letters: {', '.join(names)}"))
    return name


def check_targets(router: Router, names: Iterable[str]) -> frozenset[str]:
    """The target names, each checked against the project (an OpsError with a did-you-mean)."""
    for name in names:
        if name not in router.targets:
            hint = did_you_mean(name, router.targets)
            raise OpsError(f"no target `{name}` in this project; "
                           + (hint or f"its targets: {', '.join(sorted(router.targets))}"))
    return frozenset(names)


def python_sync_targets(router: Router, targets: Iterable[str]) -> list[str]:
    """Those of `targets` that are sync targets delivered by Python handlers: a command has
    no handler for them, so an event reaching one must not be published from here."""
    return sorted(t for t in targets if router.targets[t]["mode"] == "sync" and not router.targets[t].get("http"))


async def check_partitions(router: Router) -> None:
    """OpsError when the store shows that the instances split ordered targets over another
    number of partitions than the router was given (`--partitions`): what `status` read would
    leave partitions out, and `publish` or `redrive` would store deliveries where no instance
    reads. A store where no instance has run yet tells nothing."""
    engine, store = router.engine, router.store
    count = engine.partition_count
    for name in sorted(router.targets):
        target = router.targets[name]
        if not store.shared or target["mode"] != "async" or target["order_by"] is None:
            continue
        first, last, beyond = f"deliveries.{name}.p0", f"deliveries.{name}.p{count - 1}", f"deliveries.{name}.p{count}"
        stats = await store.stream_stats([first, last, beyond], GROUP)
        if stats[beyond].group or stats[beyond].length:
            raise OpsError(f"the store holds partition p{count} of `{name}`: its instances use more than "
                           f"{count} partitions; give --partitions as they do")
        if stats[first].group and not stats[last].group:
            raise OpsError(f"the store has no partition p{count - 1} of `{name}`: its instances use fewer than "
                           f"{count} partitions; give --partitions as they do")


async def against_store(router: Router, work: Callable[[], Awaitable[T]], *, checked: bool = False) -> T:
    """Run `work` on the router's store (after `check_partitions`, when `checked`), then close
    what it opened (the store's connections, HTTP targets' clients), whatever happened."""
    try:
        if checked:
            await check_partitions(router)
        return await work()
    finally:
        try:
            await router.engine.handlers.aclose()
        finally:
            await router.store.close()


def confirm(action: str, yes: bool, stderr: Console) -> None:
    """Go on when `--yes` was given, or the operator answers yes to "ACTION?" on a terminal;
    else OpsError."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise OpsError(f"not done: to {action}, give --yes (stdin is not a terminal to ask on)")
    stderr.print(f"{action}? [y/N] ", end="", markup=False)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise OpsError("nothing done: not confirmed")


def n_entries(count: int) -> str:
    """`1 entry`, `2 entries`."""
    return f"{count} entry" if count == 1 else f"{count} entries"


def format_time(ms: int, *, precise: bool = False) -> str:
    """A store time (milliseconds since the epoch) as UTC text, to the second (`precise`: to
    the millisecond)."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    if precise:
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}Z"
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def format_age(ms: int) -> str:
    """How long ago, in the two largest units: `850ms`, `12s`, `4m10s`, `2h03m`, `3d04h`."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
