"""Dead letters: an event a target could not take, kept with its whole history in the
stream `dead.NAME`; reading them back."""

from __future__ import annotations

from typing import Any

import attrs

from .event import Event
from .outcomes import Attempt, DeadLetter
from .store import EventStore


def dead_stream(name: str) -> str:
    return f"dead.{name}"


def dead_entry(ev: Event, target: str | None, routes: tuple[str, ...], attempts: tuple[Attempt, ...], reason: str,
               now_ms: int) -> dict[str, Any]:
    return {"event": ev.to_cloudevent(), "target": target, "routes": list(routes), "reason": reason,
            "attempts": [attrs.asdict(a) for a in attempts], "at_ms": now_ms}


async def read_dead_letters(store: EventStore, name: str) -> list[DeadLetter]:
    records = await store.range(dead_stream(name))
    return [DeadLetter(str(r.id), name, Event.from_cloudevent(r.entry["event"], stored=True), r.entry["target"],
                       tuple(r.entry["routes"]), tuple(Attempt(**a) for a in r.entry["attempts"]),
                       r.entry["reason"], r.entry["at_ms"]) for r in records]
