"""Batched acknowledgements: deliveries settled while an acknowledgement is on its way are
acknowledged together, one XACK per stream, by one task.

Each settled delivery comes with what to do once its acknowledgement has landed (release
its key, count it done). An acknowledgement that fails stays queued and is sent again (the
supervisor restarts the task with backoff): a delivery is never forgotten unacknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .inflight import GROUP
from .store import EntryId, EventStore

log = logging.getLogger(__name__)

Done = Callable[[], None]


class Acker:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.waiting: dict[str, list[tuple[EntryId, Done]]] = {}
        self.wake = asyncio.Event()
        self.sending = 0

    def add(self, stream: str, entry_id: EntryId, done: Done) -> None:
        self.waiting.setdefault(stream, []).append((entry_id, done))
        self.wake.set()

    def __len__(self) -> int:
        return sum(len(items) for items in self.waiting.values()) + self.sending

    async def run(self) -> None:
        while True:
            if not self.waiting:
                self.wake.clear()
                await self.wake.wait()
            await self.send()

    async def send(self) -> None:
        """Acknowledge everything queued, one call per stream; on failure, everything that was
        not acknowledged is queued again and the failure raised."""
        batch, self.waiting = self.waiting, {}
        self.sending = sum(len(items) for items in batch.values())
        streams = list(batch)
        try:
            results = await asyncio.gather(*(self.store.ack(stream, GROUP, [i for i, _ in batch[stream]])
                                             for stream in streams), return_exceptions=True)
        except BaseException:
            self._requeue(batch)
            raise
        finally:
            self.sending = 0
        failed: BaseException | None = None
        for stream, result in zip(streams, results, strict=True):
            if isinstance(result, BaseException):
                self._requeue({stream: batch[stream]})
                failed = result
                continue
            for _, done in batch[stream]:
                done()
        if failed is not None:
            raise failed

    def _requeue(self, batch: dict[str, list[tuple[EntryId, Done]]]) -> None:
        for stream, items in batch.items():
            self.waiting[stream] = items + self.waiting.get(stream, [])
        self.wake.set()

    async def flush(self, timeout: float) -> None:
        """Send what is queued (at stop), trying again until `timeout`; what is left stays
        pending in the store, to be delivered again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.waiting and loop.time() < deadline:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.01)):
                    await self.send()
            except Exception as exc:
                log.warning("acknowledgements not sent yet: %s", exc)
                await asyncio.sleep(0.1)
        if self.waiting:
            log.warning("%d deliveries stay pending: their acknowledgements could not be sent before stopping",
                        len(self))
