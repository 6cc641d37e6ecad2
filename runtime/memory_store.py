"""The in-memory event store: the embedded default, and the model of the contract.

Everything lives in this process, in plain dicts and lists guarded by the event loop's
single thread (no `await` happens in the middle of a mutation, so each method is atomic
the way a Redis command is). Waiting (a blocking `read`, an `append` to a full stream) is
done with futures that the mutation that makes progress possible resolves.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import heapq
import time
from collections.abc import Callable
from typing import Any

import attrs

from .store import (
    DEFAULT_MAX_EVENT_BYTES,
    MIN_ID,
    Entry,
    EntryId,
    EventStore,
    NoGroup,
    Pending,
    Record,
    StoreFull,
    StreamStats,
    decode_entry,
    encode_entry,
    max_event_bytes_option,
)


class _Signal:
    """Wake every waiter; works whatever loop the waiter waits in."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    async def wait(self, timeout: float | None) -> bool:
        return await _wait_any([self], timeout)

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.get_loop().call_soon_threadsafe(_resolve, future)


async def _wait_any(signals: list[_Signal], timeout: float | None) -> bool:
    """Wait until one of `signals` is notified (True) or `timeout` seconds pass (False)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for signal in signals:
        signal._waiters.append(future)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(future)
        return True
    except TimeoutError:
        return False
    finally:
        for signal in signals:
            if future in signal._waiters:
                signal._waiters.remove(future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@attrs.define
class _Delivery:
    consumer: str
    deliveries: int
    since_ms: int


@attrs.define
class _Group:
    last_delivered: EntryId
    pending: dict[EntryId, _Delivery] = attrs.Factory(dict)


@attrs.define
class _Stream:
    ids: list[EntryId] = attrs.Factory(list)
    entries: dict[EntryId, str | bytes] = attrs.Factory(dict)  # JSON text
    groups: dict[str, _Group] = attrs.Factory(dict)
    last_id: EntryId = MIN_ID
    appended: _Signal = attrs.Factory(_Signal)
    room: _Signal = attrs.Factory(_Signal)


class MemoryStore(EventStore):
    """The contract of `runtime/store.py`, in this process's memory. `max_unacked`: the most
    entries a stream holds unacknowledged (None: no bound); `max_event_bytes`: the largest
    event a publish stores (default 1 MiB)."""

    def __init__(self, *, max_unacked: int | None = None, clock: Callable[[], float] | None = None,
                 max_event_bytes: int | None = None) -> None:
        if max_unacked is not None and max_unacked < 1:
            raise ValueError(f"max_unacked must be at least 1, not {max_unacked}")
        self.max_unacked = max_unacked
        self.max_event_bytes = max_event_bytes_option(max_event_bytes)
        self._clock = clock or (lambda: time.time() * 1000)
        self._streams: dict[str, _Stream] = {}
        self._schedule: list[tuple[int, int, str, str | bytes]] = []
        self._scheduled_count = 0
        self._keys: dict[str, int] = {}
        self._leases: dict[str, tuple[str, int]] = {}
        self._members: dict[str, dict[str, int]] = {}
        self._key_expiry: list[tuple[int, str]] = []

    def __repr__(self) -> str:
        options = [f"max_unacked={self.max_unacked}"] if self.max_unacked is not None else []
        if self.max_event_bytes != DEFAULT_MAX_EVENT_BYTES:
            options.append(f"max_event_bytes={self.max_event_bytes}")
        return f"MemoryStore({', '.join(options)})"

    def now_ms(self) -> int:
        return int(self._clock())

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream()
        return stream

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        s = self._streams.get(stream)
        g = s.groups.get(group) if s else None
        if s is None or g is None:
            raise NoGroup(stream, group)
        return s, g

    # ---- appending ---------------------------------------------------------------

    def _unacked(self, stream: _Stream) -> int:
        if not stream.groups:
            return 0
        oldest = min(g.last_delivered for g in stream.groups.values())
        unread = len(stream.ids) - bisect.bisect_right(stream.ids, oldest)
        pending = {i for g in stream.groups.values() for i in g.pending if i <= oldest}
        return unread + len(pending)

    def _append_encoded(self, name: str, encoded: str | bytes) -> EntryId:
        stream = self._stream(name)
        now = self.now_ms()
        last = stream.last_id
        new = EntryId(now, 0) if now > last.ms else EntryId(last.ms, last.seq + 1)
        stream.last_id = new
        stream.ids.append(new)
        stream.entries[new] = encoded
        stream.appended.notify()
        return new

    async def append(self, stream: str, entry: Entry, *, timeout: float | None = None) -> EntryId:
        ids = await self.append_all([(stream, entry)], timeout=timeout)
        assert ids is not None  # no idempotency key: never a duplicate
        return ids[0]

    async def append_all(self, entries: list[tuple[str, Entry]], *, once: str | None = None, ttl_ms: int = 0,
                         timeout: float | None = None) -> list[EntryId] | None:
        encoded = [(stream, encode_entry(entry)) for stream, entry in entries]
        if self.max_unacked is not None:
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            while full := next((n for n, _ in encoded if self._unacked(self._stream(n)) >= self.max_unacked), None):
                left = None if deadline is None else deadline - asyncio.get_running_loop().time()
                if (left is not None and left <= 0) or not await self._stream(full).room.wait(left):
                    raise StoreFull(f"stream `{full}` holds {self._unacked(self._stream(full))} unacknowledged "
                                    f"entries, its bound; it stayed full for {timeout} s")
        # From here on nothing awaits: the key and the entries land together (one call is one
        # step here: the key is remembered for the call as a whole, apart from `remember`'s).
        if once is not None:
            if not self._remember_now(f"append:{once}", ttl_ms):
                return None
            if not entries:
                self._remember_now(once, ttl_ms)
        return [self._append_encoded(stream, text) for stream, text in encoded]

    # ---- groups ------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, *, start: EntryId = MIN_ID) -> bool:
        s = self._stream(stream)
        if group in s.groups:
            return False
        s.groups[group] = _Group(start)
        return True

    async def read(self, stream: str, group: str, consumer: str, *, count: int = 1,
                   block: float | None = None) -> list[Record]:
        return (await self.read_many([stream], group, consumer, count=count, block=block)).get(stream, [])

    async def read_many(self, streams: list[str], group: str, consumer: str, *, count: int = 1,
                        block: float | None = None) -> dict[str, list[Record]]:
        deadline = None if block is None else asyncio.get_running_loop().time() + block
        while True:
            found = [(name, *self._group(name, group)) for name in streams]  # every group, before taking any
            out: dict[str, list[Record]] = {}
            now = self.now_ms()
            for name, s, g in found:
                first = bisect.bisect_right(s.ids, g.last_delivered)
                fresh = s.ids[first:first + count]
                if fresh:
                    g.last_delivered = fresh[-1]
                    for entry_id in fresh:
                        g.pending[entry_id] = _Delivery(consumer, 1, now)
                    out[name] = [Record(i, decode_entry(s.entries[i]), 1) for i in fresh]
            if out or deadline is None:
                return out
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or not await _wait_any([s.appended for _, s, _ in found], left):
                return {}

    async def ack(self, stream: str, group: str, ids: list[EntryId]) -> int:
        s = self._streams.get(stream)
        g = s.groups.get(group) if s else None
        if s is None or g is None:
            return 0
        done = sum(1 for i in ids if g.pending.pop(i, None) is not None)
        if done:
            s.room.notify()
        return done

    async def pending(self, stream: str, group: str, *, consumer: str | None = None) -> list[Pending]:
        _, g = self._group(stream, group)
        now = self.now_ms()
        return [Pending(i, d.consumer, d.deliveries, max(now - d.since_ms, 0)) for i, d in sorted(g.pending.items())
                if consumer is None or d.consumer == consumer]

    async def backlog(self, stream: str, group: str) -> int:
        s = self._streams.get(stream)
        g = s.groups.get(group) if s else None
        if s is None or g is None:
            return 0
        return len(g.pending) + len(s.ids) - bisect.bisect_right(s.ids, g.last_delivered)

    async def quiet(self, streams: list[str], group: str) -> bool:
        for stream in streams:
            s = self._streams.get(stream)
            if s is not None and group not in s.groups and s.ids:
                return False  # nobody has read these yet
            if await self.backlog(stream, group):
                return False
        wanted = set(streams)
        return not any(name in wanted for _, _, name, _ in self._schedule)

    async def claim(self, stream: str, group: str, consumer: str, *, min_idle_ms: int,
                    count: int = 10, ids: list[EntryId] | None = None) -> list[Record]:
        s, g = self._group(stream, group)
        now = self.now_ms()
        taken: list[Record] = []
        chosen = None if ids is None else set(ids)
        for entry_id, delivery in sorted(g.pending.items()):
            if chosen is None and len(taken) >= count:
                break
            if chosen is not None and entry_id not in chosen:
                continue
            if chosen is not None or now - delivery.since_ms >= min_idle_ms:
                delivery.consumer = consumer
                delivery.deliveries += 1
                delivery.since_ms = now
                taken.append(Record(entry_id, decode_entry(s.entries[entry_id]), delivery.deliveries))
        return taken

    # ---- reading, retention --------------------------------------------------------

    async def range(self, stream: str, *, start: EntryId = MIN_ID, count: int | None = None) -> list[Record]:
        s = self._streams.get(stream)
        if s is None:
            return []
        first = bisect.bisect_left(s.ids, start)
        chosen = s.ids[first:] if count is None else s.ids[first:first + count]
        return [Record(i, decode_entry(s.entries[i])) for i in chosen]

    async def delete(self, stream: str, ids: list[EntryId]) -> int:
        s = self._streams.get(stream)
        if s is None:
            return 0
        gone = {i for i in ids if i in s.entries}
        for entry_id in gone:
            del s.entries[entry_id]
            for group in s.groups.values():
                group.pending.pop(entry_id, None)
        if gone:
            s.ids = [i for i in s.ids if i not in gone]
            s.room.notify()
        return len(gone)

    async def length(self, stream: str) -> int:
        s = self._streams.get(stream)
        return len(s.ids) if s else 0

    async def trim(self, stream: str, *, max_len: int | None = None, max_age_ms: int | None = None,
                   group: str | None = None) -> int:
        s = self._streams.get(stream)
        if s is None or (group is not None and group not in s.groups):
            return 0
        now = self.now_ms()
        dropped = 0
        for entry_id in s.ids:
            too_many = max_len is not None and len(s.ids) - dropped > max_len
            too_old = max_age_ms is not None and now - entry_id.ms > max_age_ms
            done = all(entry_id <= g.last_delivered and entry_id not in g.pending for g in s.groups.values())
            if not (too_many or too_old) or not done:
                break
            del s.entries[entry_id]
            dropped += 1
        del s.ids[:dropped]
        return dropped

    # ---- the delayed schedule --------------------------------------------------------

    async def schedule(self, stream: str, entry: Entry, due_ms: int) -> None:
        self._scheduled_count += 1
        heapq.heappush(self._schedule, (due_ms, self._scheduled_count, stream, encode_entry(entry)))

    async def release_due(self, *, now_ms: int | None = None, streams: list[str] | None = None) -> int:
        now = self.now_ms() if now_ms is None else now_ms
        wanted = None if streams is None else set(streams)
        due: list[tuple[int, int, str, str | bytes]] = []
        kept: list[tuple[int, int, str, str | bytes]] = []
        while self._schedule and self._schedule[0][0] <= now:
            item = heapq.heappop(self._schedule)
            (due if wanted is None or item[2] in wanted else kept).append(item)
        for item in kept:
            heapq.heappush(self._schedule, item)
        for _, _, stream, entry in due:
            # Already accepted: a retry is never refused for want of room.
            self._append_encoded(stream, entry)
        return len(due)

    async def next_due(self, streams: list[str]) -> dict[str, int]:
        wanted = set(streams)
        out: dict[str, int] = {}
        for due, _, name, _ in self._schedule:
            if name in wanted and due < out.get(name, due + 1):
                out[name] = due
        return out

    async def scheduled(self, stream: str | None = None) -> list[tuple[int, str, Any]]:
        return [(due, name, decode_entry(entry)) for due, _, name, entry in sorted(self._schedule)
                if stream is None or name == stream]

    # ---- idempotency -------------------------------------------------------------------

    async def remembered(self, key: str) -> bool:
        expiry = self._keys.get(key)
        return expiry is not None and expiry > self.now_ms()

    async def remember(self, key: str, ttl_ms: int) -> bool:
        return self._remember_now(key, ttl_ms)

    def _remember_now(self, key: str, ttl_ms: int) -> bool:
        now = self.now_ms()
        while self._key_expiry and self._key_expiry[0][0] <= now:
            expiry, old = heapq.heappop(self._key_expiry)
            if self._keys.get(old) == expiry:
                del self._keys[old]
        if key in self._keys and self._keys[key] > now:
            return False
        self._keys[key] = now + ttl_ms
        heapq.heappush(self._key_expiry, (now + ttl_ms, key))
        return True

    # ---- leases ------------------------------------------------------------------------

    async def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        now = self.now_ms()
        holder = self._leases.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._leases[name] = (owner, now + ttl_ms)
        return True

    async def lease_many(self, group: str, names: list[str], owner: str, ttl_ms: int) -> list[bool]:
        return [await self.lease(f"{group}/{name}", owner, ttl_ms) for name in names]

    async def release(self, name: str, owner: str, *, group: str | None = None) -> None:
        if group is not None:
            name = f"{group}/{name}"
        holder = self._leases.get(name)
        if holder is not None and holder[0] == owner:
            del self._leases[name]

    async def members(self, name: str, owner: str, ttl_ms: int) -> list[str]:
        now = self.now_ms()
        live = self._members.setdefault(name, {})
        live[owner] = now + ttl_ms
        for who in [who for who, until in live.items() if until <= now]:
            del live[who]
        return sorted(live)

    # ---- reading what delivery is doing ------------------------------------------------

    async def stream_stats(self, streams: list[str], group: str) -> dict[str, StreamStats]:
        scheduled = collections.Counter(name for _, _, name, _ in self._schedule)
        return {name: self._stats(name, group, scheduled[name]) for name in streams}

    def _stats(self, name: str, group: str, scheduled: int) -> StreamStats:
        s = self._streams.get(name)
        if s is None:
            return StreamStats(0, scheduled, False, 0, 0, None)
        g = s.groups.get(group)
        if g is None:
            return StreamStats(len(s.ids), scheduled, False, len(s.ids), 0, s.ids[0] if s.ids else None)
        first = bisect.bisect_right(s.ids, g.last_delivered)
        unread = len(s.ids) - first
        oldest = min(g.pending) if g.pending else (s.ids[first] if unread else None)
        consumers = collections.Counter(d.consumer for d in g.pending.values())
        return StreamStats(len(s.ids), scheduled, True, unread, len(g.pending), oldest, dict(consumers))

    async def lease_holders(self, group: str, names: list[str]) -> dict[str, str | None]:
        now = self.now_ms()
        out: dict[str, str | None] = {}
        for name in names:
            holder = self._leases.get(f"{group}/{name}")
            out[name] = holder[0] if holder is not None and holder[1] > now else None
        return out

    async def live_members(self, names: list[str]) -> dict[str, list[str]]:
        now = self.now_ms()
        return {name: sorted(who for who, until in self._members.get(name, {}).items() if until > now)
                for name in names}
