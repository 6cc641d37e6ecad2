"""`MemoryStore` against the event-store contract, plus what only the memory store promises."""

from __future__ import annotations

import asyncio

import pytest
from store_contract import MakeStore, StoreContract, fill, name, run

from interlock.runtime.memory_store import MemoryStore
from interlock.runtime.store import EntryId, EventStore, StoreFull


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make_store(self) -> MakeStore:
        def make(*, max_unacked: int | None = None) -> EventStore:
            return MemoryStore(max_unacked=max_unacked)

        return make


def test_entry_id_parse_and_order() -> None:
    assert EntryId.parse("1700000000000-7") == EntryId(1700000000000, 7)
    assert str(EntryId(1700000000000, 7)) == "1700000000000-7"
    assert EntryId(1, 9) < EntryId(2, 0) < EntryId(2, 1)


@pytest.mark.parametrize("text", ["", "abc", "12-x", "x-1", "1-2-3", "1.5-0"])
def test_entry_id_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        EntryId.parse(text)
    assert repr(text) in str(raised.value)


def test_unbounded_by_default() -> None:
    async def _run(store: EventStore) -> None:
        stream, group = name("s"), name("g")
        await store.ensure_group(stream, group)
        for n in range(1000):
            await asyncio.wait_for(store.append(stream, {"n": n}, timeout=0), 1.0)
        assert await store.length(stream) == 1000

    run(MemoryStore(), _run)


def test_usable_from_successive_event_loops() -> None:
    """`interlock.load` works without an event loop and `publish_sync` exists: one MemoryStore
    may serve several `asyncio.run`s, including its waits (blocking reads, backpressure)."""
    store = MemoryStore(max_unacked=1)
    stream, group = name("s"), name("g")

    async def first() -> None:
        await store.ensure_group(stream, group)
        assert await store.read(stream, group, "c1", block=0.02) == []
        await fill(store, stream, 1)
        with pytest.raises(StoreFull):
            await store.append(stream, {"n": 1}, timeout=0.02)

    async def second() -> None:
        (record,) = await store.read(stream, group, "c1", block=0.02)
        reader = asyncio.create_task(store.read(stream, group, "c2", block=1.0))
        waiting = asyncio.create_task(store.append(stream, {"n": 1}))
        await asyncio.sleep(0.02)
        assert not reader.done() and not waiting.done()
        await store.ack(stream, group, [record.id])
        await asyncio.wait_for(waiting, 1.0)
        assert [r.entry for r in await asyncio.wait_for(reader, 1.0)] == [{"n": 1}]

    asyncio.run(first())
    asyncio.run(second())


def test_time_is_the_store_clock() -> None:
    """With a driven clock, the time rules hold to the millisecond: ids, idle times, claim's
    "at least", trim's "older than", the schedule's default now, and remember's ttl."""
    now = [1_000_000.0]
    store = MemoryStore(clock=lambda: now[0])

    async def _run(store: EventStore) -> None:
        stream, group = name("s"), name("g")
        await store.ensure_group(stream, group)
        (a,) = await fill(store, stream, 1)
        assert a.ms == 1_000_000
        await store.read(stream, group, "c1")
        now[0] += 250
        assert [p.idle_ms for p in await store.pending(stream, group)] == [250]
        assert await store.claim(stream, group, "c2", min_idle_ms=251) == []
        assert [r.id for r in await store.claim(stream, group, "c2", min_idle_ms=250)] == [a]
        assert [(p.consumer, p.idle_ms) for p in await store.pending(stream, group)] == [("c2", 0)]

        assert await store.ack(stream, group, [a]) == 1
        assert await store.trim(stream, max_age_ms=250) == 0  # exactly 250 ms old
        now[0] += 1
        assert await store.trim(stream, max_age_ms=250) == 1

        await store.schedule(stream, {"n": 1}, store.now_ms() + 10)
        assert await store.release_due() == 0
        now[0] += 10
        assert await store.release_due() == 1

        key = name("key")
        assert await store.remember(key, 100) is True
        now[0] += 99
        assert await store.remember(key, 100) is False
        now[0] += 2
        assert await store.remember(key, 100) is True

    run(store, _run)
