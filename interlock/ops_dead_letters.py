"""`interlock dead-letters`: choosing entries of a dead letter by filters, and what can be
done with them on a live store — list, show, redrive (deliver again), purge (delete).

Every subcommand reads the whole dead letter (one XRANGE) and filters it here: a dead letter
holds what failed, not the traffic, and its entries are kept only for their `retain`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from interlock.runtime.dead_letters import dead_stream
from interlock.runtime.outcomes import DeadLetter
from interlock.runtime.router import Router
from interlock.runtime.store import EntryId

from .ops import OpsError, format_time, python_sync_targets

#: Entries deleted per store call when purging.
DELETE_BATCH = 1000


@attrs.frozen
class Filters:
    """Which entries a subcommand acts on: all that pass every filter given, oldest first, at
    most `limit` of them."""

    targets: frozenset[str] = frozenset()  # the entry's target is one of these
    kinds: frozenset[str] = frozenset()  # the error kind of its last attempt is one of these
    older_than_ms: int | None = None  # dead-lettered at least this long ago
    newer_than_ms: int | None = None  # dead-lettered less than this long ago
    ids: frozenset[str] = frozenset()  # its id is one of these
    limit: int | None = None

    def admits(self, entry: DeadLetter, now_ms: int) -> bool:
        age = now_ms - entry.at_ms
        return ((not self.targets or entry.target in self.targets)
                and (not self.kinds or last_kind(entry) in self.kinds)
                and (self.older_than_ms is None or age >= self.older_than_ms)
                and (self.newer_than_ms is None or age < self.newer_than_ms)
                and (not self.ids or entry.id in self.ids))


def entry_ids(texts: Iterable[str]) -> list[str]:
    """Entry ids as typed (`1700000000000-0`, or `1700000000000` for its first), as the store
    prints them, each once, in order; OpsError for one that is not an id."""
    try:
        return list(dict.fromkeys(str(EntryId.parse(text)) for text in texts))
    except ValueError as exc:
        raise OpsError(str(exc)) from None


def last_kind(entry: DeadLetter) -> str | None:
    """The error kind of the entry's last attempt (None for an unrouted event: no attempt)."""
    return entry.attempts[-1].kind if entry.attempts else None


async def select(router: Router, name: str, filters: Filters) -> tuple[list[DeadLetter], int, int]:
    """The entries of dead letter `name` that the filters admit, up to their limit; with how
    many matched in all, and how many the dead letter holds."""
    entries = await router.engine.dead_letters(name)
    now = router.store.now_ms()
    matched = [entry for entry in entries if filters.admits(entry, now)]
    chosen = matched if filters.limit is None else matched[:filters.limit]
    return chosen, len(matched), len(entries)


async def find(router: Router, name: str, ids: list[str]) -> list[DeadLetter]:
    """The entries with those ids, in the order asked; OpsError naming any not there."""
    wanted = entry_ids(ids)
    found = {entry.id: entry for entry in await router.engine.dead_letters(name)}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise OpsError(f"no entry {', '.join(missing)} in dead letter `{name}` "
                       f"(`interlock dead-letters list` shows its entries)")
    return [found[i] for i in wanted]


def check_redrivable(router: Router, entries: list[DeadLetter]) -> None:
    """OpsError unless every entry can be delivered again from here: an entry of a sync
    target would go to a stream that no instance reads, and an unrouted event that now
    reaches a Python sync target would need its handler, which this process has not; nor can
    an entry of a target the project no longer has."""
    gone = sorted({e.target for e in entries if e.target is not None and e.target not in router.targets})
    if gone:
        raise OpsError(f"cannot redrive entries of {', '.join(f'`{t}`' for t in gone)}: not a target of this project "
                       "(any more); leave them out with --target, or purge them")
    sync = sorted({e.target for e in entries if e.target is not None and router.targets[e.target]["mode"] == "sync"})
    if sync:
        raise OpsError(f"cannot redrive entries of sync target(s) {', '.join(f'`{t}`' for t in sync)}: sync "
                       "targets are called inside publish, not delivered from the store: publish those events "
                       "again (from a service; `interlock publish` for an HTTP target), or leave them out with "
                       "--target")
    for entry in entries:
        if entry.target is None:
            python = python_sync_targets(router, router.match(entry.event.type, entry.event.data))
            if python:
                raise OpsError(f"entry {entry.id} (an unrouted event) now reaches Python sync target(s) "
                               f"{', '.join(f'`{t}`' for t in python)}, which have no handler in this command; "
                               "leave it out with --id, or publish it from a service")


async def redrive(router: Router, name: str, entries: list[DeadLetter]) -> int:
    """Deliver the entries to their targets again (the router's `redrive`); how many went."""
    if not entries:
        return 0
    return await router.redrive(name, [entry.id for entry in entries])


async def purge(router: Router, name: str, entries: list[DeadLetter]) -> int:
    """Delete the entries from the dead letter; how many were there."""
    ids = [EntryId.parse(entry.id) for entry in entries]
    deleted = 0
    for start in range(0, len(ids), DELETE_BATCH):
        deleted += await router.store.delete(dead_stream(name), ids[start:start + DELETE_BATCH])
    return deleted


def entry_json(entry: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    """An entry as `--format json` prints it: with its routes, every attempt (`history`) and
    its event when `full`."""
    out: dict[str, Any] = {
        "id": entry.id, "at_ms": entry.at_ms, "at": format_time(entry.at_ms), "target": entry.target,
        "event_type": entry.event.type, "event_id": entry.event.id, "last_kind": last_kind(entry),
        "attempts": len(entry.attempts), "reason": entry.reason}
    if full:
        out["routes"] = list(entry.routes)
        out["history"] = [{**attrs.asdict(a), "at": format_time(a.at_ms, precise=True)} for a in entry.attempts]
        out["event"] = entry.event.to_cloudevent()
    return out
