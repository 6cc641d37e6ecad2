"""What this process has in hand: per stream, the deliveries it read and has not finished
with (and when it read them); and, for `drain` on a store of this process's own, how many
deliveries accepted here are not done yet; and how long a delivery may stay pending before
another instance claims it."""

from __future__ import annotations

import asyncio
from typing import Any

from .store import EntryId

GROUP = "interlock"


def claim_idle_of(claim_idle_ms: int, target: dict[str, Any]) -> int:
    """How long a delivery of `target` stays pending on a shared store before another
    instance may claim it as abandoned: `claim_idle_ms`, never less than twice the target's
    timeout (so that live work is not stolen)."""
    return max(claim_idle_ms, 2 * int(target["timeout_ms"]))


class InHand:
    def __init__(self) -> None:
        self.by_stream: dict[str, dict[EntryId, int]] = {}  # stream -> entry id -> when read (ms)

    def take(self, stream: str, entry_id: EntryId, now_ms: int) -> None:
        self.by_stream.setdefault(stream, {})[entry_id] = now_ms

    def drop(self, stream: str, entry_id: EntryId) -> None:
        held = self.by_stream.get(stream)
        if held is not None:
            held.pop(entry_id, None)

    def read_at(self, stream: str, entry_id: EntryId) -> int | None:
        return self.by_stream.get(stream, {}).get(entry_id)

    def ids(self, stream: str) -> set[EntryId]:
        return set(self.by_stream.get(stream, ()))

    def count(self, stream: str) -> int:
        return len(self.by_stream.get(stream, ()))

    def forget(self, stream: str) -> None:
        self.by_stream.pop(stream, None)

    def clear(self) -> None:
        self.by_stream.clear()


class Outstanding:
    """Deliveries accepted and not yet acknowledged or dead-lettered (retries count as new)."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def rebind(self) -> None:
        """A new `idle` event (one is bound to the event loop that first waited on it)."""
        self.idle = asyncio.Event()
        if not self.count:
            self.idle.set()

    def started(self, n: int = 1) -> None:
        self.count += n
        if self.count:
            self.idle.clear()

    def finished(self, n: int = 1) -> None:
        self.count -= n
        if self.count <= 0:
            self.count = 0
            self.idle.set()
