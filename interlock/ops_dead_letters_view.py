"""How `interlock dead-letters` shows entries: a table of them (`list`), and one entry with
its whole history (`show`)."""

from __future__ import annotations

import json

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from interlock.runtime.outcomes import DeadLetter

from .ops import format_age, format_time, n_entries
from .ops_dead_letters import last_kind

UNROUTED = "(unrouted)"


def entries_table(name: str, entries: list[DeadLetter], matched: int, total: int, now_ms: int) -> RenderableType:
    table = Table(title=f"dead letter {name}: {_shown(len(entries), matched, total)}", title_justify="left")
    for column in ("id", "time", "event", "target", "last error", "attempts", "reason"):
        table.add_column(column, justify="right" if column == "attempts" else "left", overflow="fold")
    for entry in entries:
        table.add_row(entry.id, f"{format_time(entry.at_ms)} ({format_age(now_ms - entry.at_ms)} ago)",
                      f"{entry.event.type} {entry.event.id}", entry.target or UNROUTED, last_kind(entry) or "-",
                      str(len(entry.attempts)), entry.reason)
    return table


def _shown(shown: int, matched: int, total: int) -> str:
    said = f"{matched} of {n_entries(total)} match" if matched != total else n_entries(total)
    return said if shown == matched else f"{said}, the oldest {shown} shown"


def show_entry(console: Console, entry: DeadLetter, now_ms: int) -> None:
    """One entry: where it failed and why, every attempt, and the event as it was published."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    facts.add_row("dead letter", f"{entry.dead_letter}, entry {entry.id}")
    facts.add_row("time", f"{format_time(entry.at_ms)} ({format_age(now_ms - entry.at_ms)} ago)")
    facts.add_row("target", entry.target or UNROUTED)
    facts.add_row("routes", ", ".join(entry.routes) or "-")
    facts.add_row("reason", entry.reason)
    attempts = Table(title="attempts", title_justify="left")
    for column in ("#", "time", "kind", "status", "message"):
        attempts.add_column(column, overflow="fold")
    for attempt in entry.attempts:
        attempts.add_row(str(attempt.attempt), format_time(attempt.at_ms, precise=True), attempt.kind,
                         "-" if attempt.status is None else str(attempt.status), attempt.message)
    event = json.dumps(entry.event.to_cloudevent(), indent=2, ensure_ascii=False)
    parts: list[RenderableType] = [facts]
    parts.append(attempts if entry.attempts else Text("no attempts (no route matched the event)"))
    parts.extend([Text("event", style="bold"), Text(event)])
    console.print(Group(*parts))
