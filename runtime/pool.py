"""A target's pool: the deliveries of one async target that this process has read, run at
most `concurrency` at a time, by as many worker tasks, which end when nothing waits.

Read ahead: the pool takes up to `capacity` deliveries waiting to run, which the reader
fills with each read. It starts at twice the concurrency (at least 16) and adapts: when a
read brought all it asked for (more were waiting) and the workers ran out of deliveries
before the next read (the handlers are faster than the reads), it doubles, up to
`MAX_CAPACITY`, so that a read brings more at once;
when a delivery waited longer than `max_wait` seconds to start (the handlers slowed down;
`MAX_WAIT`, or less: on a shared store, a quarter of the time after which another instance
claims a delivery left pending), it halves again, so that little waits here that another
instance could have taken.

`order by`: deliveries with the same key run one at a time, in the order they were read: a
key is *busy* from the moment one of its deliveries is admitted until that delivery is done
with (acknowledged, dead-lettered, or left pending), retries included — a delivery waiting
for its retry keeps its key, and its retry, read later, is admitted as the same delivery.
Later deliveries of a busy key are *held* here, not in the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .store import Record

log = logging.getLogger(__name__)

Item = tuple[str, Record]  # (stream, record)
MAX_CAPACITY = 512
MAX_WAIT = 1.0


class TargetPool:
    def __init__(self, name: str, concurrency: int, ordered: bool, deliver: Callable[[str, Record], Awaitable[None]],
                 room_freed: asyncio.Event, max_wait: float = MAX_WAIT) -> None:
        self.name = name
        self.concurrency = max(concurrency, 1)
        self.max_wait = max_wait  # seconds a delivery may wait to start before the read-ahead halves
        self.least = max(2 * self.concurrency, 16)
        self.capacity = self.least  # read ahead: what may wait here to run (adapts: see the module)
        self.ordered = ordered
        self.deliver = deliver
        self.room_freed = room_freed
        self.queue: deque[Item] = deque()
        self.since: deque[float] = deque()  # when each delivery of `queue` was put there (loop time)
        self.running = 0  # deliveries under way
        self.workers = 0  # tasks running them
        self.busy: dict[Any, str] = {}  # key -> the delivery that holds it
        self.held: dict[Any, deque[Item]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_progress: dict[int, Item] = {}  # the deliveries running, by id(record)
        self.starved = False  # a worker found nothing left to run since the last read
        self.full = False  # the last read brought as many as it asked for

    def room(self) -> int:
        """How many more deliveries this pool takes now."""
        if self.starved and self.full and not self.queue:  # the workers waited for a read that had more
            self.capacity = min(self.capacity * 2, MAX_CAPACITY)
            self.full = False
        return max(self.capacity - len(self.queue) - self.running, 0)

    def was_read(self, asked: int, got: int) -> None:
        """The reader asked for `asked` deliveries for this pool and got `got`."""
        self.full = got >= asked
        self.starved = False

    def submit(self, stream: str, record: Record) -> None:
        key = record.entry.get("key")
        if self.ordered and key is not None:
            owner = self.busy.get(key)
            delivery = record.entry["delivery"]
            if owner is not None and owner != delivery:
                self.held.setdefault(key, deque()).append((stream, record))
                return
            self.busy[key] = delivery
        self.queue.append((stream, record))
        self.since.append(asyncio.get_running_loop().time())
        self._pump()

    def release(self, record: Record) -> None:
        """The delivery is done with: its key goes to the next delivery held behind it."""
        key = record.entry.get("key")
        if not self.ordered or key is None or self.busy.get(key) != record.entry["delivery"]:
            return
        del self.busy[key]
        waiting = self.held.get(key)
        if waiting:
            following = waiting.popleft()
            if not waiting:
                del self.held[key]
            self.busy[key] = following[1].entry["delivery"]
            self.queue.append(following)
            self.since.append(asyncio.get_running_loop().time())
            self._pump()

    def _pump(self) -> None:
        """Start workers for what waits, up to `concurrency`; a worker runs deliveries one
        after another while any wait, then ends (no task per delivery, none idle)."""
        for _ in range(min(self.concurrency - self.workers, len(self.queue))):
            self.workers += 1
            task = asyncio.create_task(self._work())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _work(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            while self.queue:
                stream, record = self.queue.popleft()
                if loop.time() - self.since.popleft() > self.max_wait and self.capacity > self.least:
                    self.capacity = max(self.capacity // 2, self.least)
                self.running += 1
                self.in_progress[id(record)] = (stream, record)
                try:
                    await self.deliver(stream, record)
                except Exception:  # a bug: logged; the delivery stays pending in the store
                    log.exception("delivery %s of `%s` failed", record.id, self.name,
                                  extra={"target": self.name, "entry": str(record.id)})
                finally:
                    self.running -= 1
                    self.in_progress.pop(id(record), None)
                    self.room_freed.set()
            self.starved = True
        finally:
            self.workers -= 1

    def keys_in(self, stream_of: Callable[[Any], str], stream: str) -> bool:
        """Whether a key of `stream` is busy here."""
        return any(stream_of(key) == stream for key in self.busy)

    def forget(self, stream_of: Callable[[Any], str], stream: str) -> None:
        """Drop what waits here of a stream this process no longer holds (its deliveries stay
        pending in the store, for the next holder). A delivery already running finishes."""
        kept = [(item, since) for item, since in zip(self.queue, self.since, strict=True) if item[0] != stream]
        self.queue = deque(item for item, _ in kept)
        self.since = deque(since for _, since in kept)
        for key in [key for key in self.held if stream_of(key) == stream]:
            del self.held[key]
        for key in [key for key in self.busy if stream_of(key) == stream]:
            del self.busy[key]

    def cancel(self) -> None:
        """Cancel the workers (they stop at their next wait); `stop` waits for them."""
        for task in list(self.tasks):
            task.cancel()

    async def stop(self) -> None:
        self.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.in_progress.clear()
        self.queue.clear()
        self.since.clear()
        self.held.clear()
        self.busy.clear()
