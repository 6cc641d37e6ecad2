"""The retry scheduler: moves due retries from their streams' schedules into the streams,
waking when the next one is due rather than polling, and applies retention.

This process knows when the retries it schedules are due (`scheduled`). Retries scheduled by
other processes (one that died before their time, say) are found by a sweep every
`sweep_ms`, which also trims what retention allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .store import EventStore

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, store: EventStore, streams: Callable[[], list[str]],
                 housekeeping: Callable[[], Awaitable[int]], sweep_ms: int) -> None:
        self.store = store
        self.streams = streams  # the streams whose retries this process releases
        self.housekeeping = housekeeping
        self.sweep_ms = sweep_ms
        self.next_due: int | None = None
        self.wake = asyncio.Event()

    def scheduled(self, due_ms: int) -> None:
        """A retry was scheduled here, due at `due_ms`."""
        if self.next_due is None or due_ms < self.next_due:
            self.next_due = due_ms
            self.wake.set()

    async def run(self) -> None:
        store = self.store
        self.next_due = await store.next_due(self.streams())
        next_sweep = store.now_ms() + self.sweep_ms
        while True:
            now = store.now_ms()
            if self.next_due is not None and self.next_due <= now:
                self.next_due = None  # a retry scheduled while releasing lowers it again
                streams = self.streams()
                await store.release_due(streams=streams)
                self._found(await store.next_due(streams))
                continue
            if now >= next_sweep:
                streams = self.streams()
                self._found(await store.next_due(streams))
                await self.housekeeping()
                next_sweep = store.now_ms() + self.sweep_ms
                continue
            until = min(next_sweep, self.next_due if self.next_due is not None else next_sweep)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(until - now, 1) / 1000):  # (wait_for may swallow a cancel on 3.11)
                    await self.wake.wait()

    def _found(self, due: int | None) -> None:
        if due is not None and (self.next_due is None or due < self.next_due):
            self.next_due = due
