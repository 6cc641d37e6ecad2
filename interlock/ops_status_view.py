"""How `interlock status` shows a `Status`: tables for people, and the live view of `--watch`."""

from __future__ import annotations

import asyncio
import itertools
import logging

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from interlock.runtime.router import Router
from interlock.runtime.store import StoreError

from .ops import format_age, format_time
from .ops_status import Status, TargetStatus, collect

log = logging.getLogger(__name__)

NOT_APPLICABLE = "-"


def render(status: Status) -> RenderableType:
    """The targets, the partition holders of ordered targets, and the dead letters."""
    parts: list[RenderableType] = [Text(f"{status.store} at {format_time(status.at_ms)}")]
    targets = Table(title="targets", title_justify="left")
    for column in ("target", "mode", "backlog", "pending", "in retry", "dead letters", "oldest", "instances"):
        targets.add_column(column, justify="left" if column in ("target", "mode") else "right")
    for t in status.targets:
        targets.add_row(*_target_row(t, status.at_ms))
    parts.append(targets)
    if any(t.mode == "sync" for t in status.targets):
        parts.append(Text("sync targets are called inside publish: nothing of theirs waits in the store "
                          "(their failures still go to their dead letter)", style="dim"))
    holders = Table(title="partition holders", title_justify="left")
    for column in ("target", "holder", "partitions"):
        holders.add_column(column)
    for t in status.targets:
        for holder, numbers in _by_holder(t):
            holders.add_row(t.name, holder or "(free)", _ranges(numbers))
    if holders.row_count:
        parts.append(holders)
    dead = Table(title="dead letters", title_justify="left")
    dead.add_column("dead letter")
    dead.add_column("depth", justify="right")
    for name, depth in sorted(status.dead_letters.items()):
        dead.add_row(name, str(depth))
    parts.append(dead)
    return Group(*parts)


def _target_row(t: TargetStatus, now_ms: int) -> list[str]:
    if t.mode == "sync":
        return [t.name, "sync", NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE, str(t.dead_letters), NOT_APPLICABLE,
                NOT_APPLICABLE]
    mode = f"async, {t.streams} partitions" if t.holders is not None else "async"
    oldest = NOT_APPLICABLE if t.oldest_ms is None else format_age(now_ms - t.oldest_ms)
    return [t.name, mode, str(t.backlog), str(t.pending), str(t.in_retry), str(t.dead_letters), oldest,
            str(len(t.instances))]


def _by_holder(t: TargetStatus) -> list[tuple[str | None, list[int]]]:
    """Each holder (None: free) of the target's partitions, with the partitions it holds."""
    if t.holders is None:
        return []
    held: dict[str | None, list[int]] = {}
    for number, holder in enumerate(t.holders):
        held.setdefault(holder, []).append(number)
    return sorted(held.items(), key=lambda item: (item[0] is None, item[0] or ""))


def _ranges(numbers: list[int]) -> str:
    """Partition numbers as ranges: `p0-p3, p8`."""
    out = []
    for _, run in itertools.groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
        group = [number for _, number in run]
        out.append(f"p{group[0]}" if len(group) == 1 else f"p{group[0]}-p{group[-1]}")
    return ", ".join(out)


async def watch(router: Router, interval: float, console: Console) -> None:
    """Show the status, read again every `interval` seconds, until cancelled (Ctrl-C): in place
    on a terminal, one after the other elsewhere (a file, a pipe). A store that does not
    answer for a while is said in the view, and asked again."""
    footer = Text(f"every {interval:g} s; Ctrl-C to stop", style="dim")
    if not console.is_terminal:
        while True:
            console.print(Group(await _view(router, interval), footer))
            await asyncio.sleep(interval)
    with Live(console=console, auto_refresh=False, redirect_stderr=False) as live:
        while True:
            live.update(Group(await _view(router, interval), footer), refresh=True)
            await asyncio.sleep(interval)


async def _view(router: Router, interval: float) -> RenderableType:
    try:
        return render(await collect(router))
    except StoreError as exc:
        if not exc.retryable:
            raise
        log.debug("status: %s", exc)
        return Text(f"the store does not answer: {exc} (asking again every {interval:g} s)")
