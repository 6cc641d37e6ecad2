"""The retry scheduler: moves due retries from their streams' schedules into the streams,
waking when the next one is due rather than polling, and applies retention.

It keeps, per stream, when the soonest retry there is due: this process knows the retries
it schedules (`scheduled`) and those it adopts with a partition or at start. Retries that
other processes scheduled (one that died before their time, say) are found by a sweep every
`sweep_ms` (`sweep` says which streams to look at), which also applies retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .store import EventStore

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, store: EventStore, sweep: Callable[[bool], list[str]],
                 housekeeping: Callable[[], Awaitable[int]], sweep_ms: int) -> None:
        self.store = store
        self.sweep = sweep  # the streams to look at in a sweep (True: all of them)
        self.housekeeping = housekeeping
        self.sweep_ms = sweep_ms
        self.due: dict[str, int] = {}  # per stream, when its soonest retry is due
        self.wake = asyncio.Event()

    def scheduled(self, stream: str, due_ms: int) -> None:
        """A retry is in `stream`'s schedule, due at `due_ms`."""
        if due_ms < self.due.get(stream, due_ms + 1):
            self.due[stream] = due_ms
            self.wake.set()

    async def run(self) -> None:
        store = self.store
        for stream, due in (await store.next_due(self.sweep(True))).items():  # every stream, at each start
            self.scheduled(stream, due)
        next_sweep = store.now_ms() + self.sweep_ms
        while True:
            now = store.now_ms()
            ready = [stream for stream, due in self.due.items() if due <= now]
            if ready:
                await store.release_due(streams=ready)  # (raising, it leaves them due: tried again)
                for stream in ready:
                    if self.due.get(stream, now + 1) <= now:
                        del self.due[stream]
                for stream, due in (await store.next_due(ready)).items():  # what is left, or came meanwhile
                    self.scheduled(stream, due)
                continue
            if now >= next_sweep:
                for stream, due in (await store.next_due(self.sweep(False))).items():
                    self.scheduled(stream, due)
                await self.housekeeping()
                next_sweep = store.now_ms() + self.sweep_ms
                continue
            until = min(next_sweep, *self.due.values()) if self.due else next_sweep
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(until - now, 1) / 1000):  # (wait_for may swallow a cancel on 3.11)
                    await self.wake.wait()
