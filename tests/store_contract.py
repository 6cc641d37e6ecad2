"""The event-store contract suite: one set of tests that every `EventStore` must pass, unchanged.

Written from the docstrings of `runtime/store.py` alone. A store's test module subclasses
`StoreContract` (the class is not collected by itself) and provides one fixture:

    @pytest.fixture
    def make_store(self) -> Callable[..., EventStore]:
        # make_store(*, max_unacked: int | None = None) -> EventStore

`make_store` must not need an event loop: each test builds its store, then runs its body in
one `asyncio.run`, and closes the store in that same loop (`run` below). Names of streams,
groups and idempotency keys are unique per test, so a shared server is fine. Time comes from
the store's clock (`now_ms`), explicit `now_ms=` arguments, and a few short real waits: no
test assumes a fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from interlock.runtime.store import (
    MIN_ID,
    Entry,
    EntryId,
    EventStore,
    Pending,
    Record,
    StoreError,
    StoreFull,
    StreamStats,
)

MakeStore = Callable[..., EventStore]
Body = Callable[[EventStore], Awaitable[None]]

# Longest a test body may take: a store that hangs fails the test instead of the run.
LIMIT_S = 10.0


def run(store: EventStore, body: Body) -> None:
    """Run `body(store)` in a fresh event loop, then close the store in that same loop."""

    async def main() -> None:
        try:
            await asyncio.wait_for(body(store), LIMIT_S)
        finally:
            await store.close()

    asyncio.run(main())


def name(kind: str) -> str:
    return f"contract-{kind}-{uuid.uuid4().hex}"


def canon(value: Any) -> str:
    """A JSON text that tells apart what `==` does not (True and 1, 1.0 and 1)."""
    return json.dumps(value, sort_keys=True)


def ids_of(records: list[Record]) -> list[EntryId]:
    return [r.id for r in records]


def tags_of(records: list[Record]) -> list[int]:
    return [r.entry["n"] for r in records]


async def fill(store: EventStore, stream: str, n: int, first: int = 0) -> list[EntryId]:
    """Append entries {"n": first}, {"n": first + 1}, ...; returns their ids."""
    return [await store.append(stream, {"n": i}) for i in range(first, first + n)]


def strictly_increasing(ids: list[EntryId]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


ENTRIES: list[Entry] = [
    {},
    {"id": "o1", "amount": 5000, "currency": "EUR"},
    {
        "nested": {"list": [1, 2.5, "three", None, True, False, {"deep": [[], {}]}], "empty": {}},
        "big": 2**53 + 1,
        "negative": -7,
        "tenth": 0.1,
        "one_float": 1.0,
        "flag": True,
        "nothing": None,
    },
    {"unicode": "héllo wörld ☃ 日本語 🚀", "ключ": "значение", "escapes": "\"'\\\n\t", "nul": "a\u0000b"},
    {"looks_like_json": '{"a": 1}', "number_text": "42", "empty_text": "", "list_text": "[1]"},
]


class StoreContract:
    """The contract tests; subclasses provide the `make_store` fixture."""

    @pytest.fixture
    def store(self, make_store: MakeStore) -> EventStore:
        return make_store()

    # -- append, ids, entries -------------------------------------------------------------------

    def test_append_ids_strictly_increase_and_round_trip(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            ids = await fill(store, stream, 50)  # many land in the same millisecond
            assert all(isinstance(i, EntryId) for i in ids)
            assert strictly_increasing(ids)
            assert [EntryId.parse(str(i)) for i in ids] == ids
            assert ids_of(await store.range(stream)) == ids

        run(store, _run)

    def test_entries_come_back_equal(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = [await store.append(stream, entry) for entry in ENTRIES]
            want = [canon(e) for e in ENTRIES]
            assert [canon(r.entry) for r in await store.range(stream)] == want
            read = await store.read(stream, group, "c1", count=len(ENTRIES))
            assert ids_of(read) == ids
            assert [canon(r.entry) for r in read] == want
            claimed = await store.claim(stream, group, "c2", min_idle_ms=0, count=len(ENTRIES))
            assert [canon(r.entry) for r in claimed] == want

        run(store, _run)

    def test_entries_are_stored_by_value(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            entry: Entry = {"n": 1, "items": [1, 2], "meta": {"k": "v"}}
            await store.append(stream, entry)
            entry["n"] = 99
            entry["items"].append(3)
            entry["meta"]["k"] = "changed"
            (first,) = await store.range(stream)
            first.entry["items"].append(4)
            first.entry["extra"] = True
            (again,) = await store.range(stream)
            assert again.entry == {"n": 1, "items": [1, 2], "meta": {"k": "v"}}

        run(store, _run)

    def test_a_stream_never_written_is_empty(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            assert await store.length(stream) == 0
            assert await store.range(stream) == []
            assert await store.trim(stream, max_len=0) == 0

        run(store, _run)

    # -- groups ---------------------------------------------------------------------------------

    def test_ensure_group_creates_the_stream(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            assert await store.length(stream) == 0
            assert await store.read(stream, group, "c1") == []
            (entry_id,) = await fill(store, stream, 1)
            assert ids_of(await store.read(stream, group, "c1")) == [entry_id]

        run(store, _run)

    def test_ensure_group_is_idempotent(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            ids = await fill(store, stream, 3)
            made = await asyncio.gather(*(store.ensure_group(stream, group) for _ in range(5)))
            assert sorted(made) == [False, False, False, False, True]  # made once
            assert ids_of(await store.read(stream, group, "c1", count=2)) == ids[:2]
            # Creating it again, whatever the start, leaves its cursor and pending entries alone.
            assert await store.ensure_group(stream, group) is False
            assert await store.ensure_group(stream, group, start=MIN_ID) is False
            assert [p.id for p in await store.pending(stream, group)] == ids[:2]
            assert ids_of(await store.read(stream, group, "c1", count=10)) == ids[2:]

        run(store, _run)

    def test_default_start_reads_everything(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            ids = await fill(store, stream, 3)
            await store.ensure_group(stream, group)
            assert ids_of(await store.read(stream, group, "c1", count=10)) == ids

        run(store, _run)

    def test_start_reads_only_later_entries(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, late, middle = name("s"), name("late"), name("middle")
            a, b, c = await fill(store, stream, 3)
            await store.ensure_group(stream, late, start=c)
            await store.ensure_group(stream, middle, start=a)
            assert await store.read(stream, late, "c1", count=10) == []
            (d,) = await fill(store, stream, 1, first=3)
            assert ids_of(await store.read(stream, late, "c1", count=10)) == [d]
            assert ids_of(await store.read(stream, middle, "c1", count=10)) == [b, c, d]

        run(store, _run)

    # -- read -----------------------------------------------------------------------------------

    def test_read_count_defaults_to_one_oldest_first(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 3)
            got = [ids_of(await store.read(stream, group, "c1")) for _ in range(4)]
            assert got == [[ids[0]], [ids[1]], [ids[2]], []]

        run(store, _run)

    def test_read_hands_each_entry_to_one_consumer(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 6)
            first = await store.read(stream, group, "c1", count=2)
            second = await store.read(stream, group, "c2", count=3)
            third = await store.read(stream, group, "c1", count=10)
            assert ids_of(first) == ids[:2]
            assert ids_of(second) == ids[2:5]
            assert ids_of(third) == ids[5:]
            assert await store.read(stream, group, "c3", count=10) == []
            owners = {p.id: p.consumer for p in await store.pending(stream, group)}
            assert owners == {i: ("c2" if i in ids[2:5] else "c1") for i in ids}

        run(store, _run)

    def test_two_groups_each_see_every_entry(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, g1, g2 = name("s"), name("g1"), name("g2")
            await store.ensure_group(stream, g1)
            await store.ensure_group(stream, g2)
            ids = await fill(store, stream, 4)
            assert ids_of(await store.read(stream, g1, "c1", count=10)) == ids
            assert ids_of(await store.read(stream, g2, "c1", count=2)) == ids[:2]
            assert ids_of(await store.read(stream, g2, "c2", count=10)) == ids[2:]

        run(store, _run)

    def test_read_records_one_delivery(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 2)
            records = await store.read(stream, group, "c1", count=2)
            assert [r.deliveries for r in records] == [1, 1]
            assert [(p.id, p.consumer, p.deliveries) for p in await store.pending(stream, group)] == [
                (ids[0], "c1", 1),
                (ids[1], "c1", 1),
            ]

        run(store, _run)

    def test_read_without_block_returns_at_once(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            started = time.monotonic()
            assert await store.read(stream, group, "c1", count=5) == []
            assert time.monotonic() - started < 0.1
            # block=0 waits no time (unlike Redis' BLOCK 0, which waits forever).
            assert await asyncio.wait_for(store.read(stream, group, "c1", block=0), 1.0) == []

        run(store, _run)

    def test_read_with_block_waits_for_an_append(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            reader = asyncio.create_task(store.read(stream, group, "c1", count=5, block=5.0))
            await asyncio.sleep(0.05)
            assert not reader.done()
            appended = time.monotonic()
            entry_id = await store.append(stream, {"n": 7})
            records = await asyncio.wait_for(reader, 2.0)
            assert time.monotonic() - appended < 1.0
            assert [(r.id, r.entry, r.deliveries) for r in records] == [(entry_id, {"n": 7}, 1)]

        run(store, _run)

    def test_read_with_block_gives_up_empty(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            started = time.monotonic()
            assert await store.read(stream, group, "c1", block=0.1) == []
            assert 0.08 <= time.monotonic() - started < 1.0

        run(store, _run)

    def test_read_from_a_missing_group_raises(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group, missing = name("s"), name("g"), name("missing")
            await store.ensure_group(stream, group)
            await fill(store, stream, 1)
            with pytest.raises(StoreError) as raised:
                await store.read(stream, missing, "c1")
            assert missing in str(raised.value) or stream in str(raised.value)
            nowhere = name("nowhere")
            with pytest.raises(StoreError) as raised:
                await store.read(nowhere, group, "c1", block=0.05)
            assert group in str(raised.value) or nowhere in str(raised.value)

        run(store, _run)

    # -- ack and pending ------------------------------------------------------------------------

    def test_ack_counts_only_pending_entries(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group, other = name("s"), name("g"), name("other")
            await store.ensure_group(stream, group)
            await store.ensure_group(stream, other)
            a, b, c, d = await fill(store, stream, 4)
            await store.read(stream, group, "c1", count=3)
            await store.read(stream, other, "c1", count=1)
            assert await store.ack(stream, group, []) == 0
            assert await store.ack(stream, group, [a, b]) == 2
            assert await store.ack(stream, group, [a, b]) == 0  # already acked
            assert await store.ack(stream, group, [c, d, EntryId(1, 0)]) == 1  # d unread, 1-0 absent
            assert await store.pending(stream, group) == []
            # The other group's pending entry is its own.
            assert [p.id for p in await store.pending(stream, other)] == [a]
            # Acked entries are not delivered again; unread ones still are.
            assert ids_of(await store.read(stream, group, "c2", count=10)) == [d]

        run(store, _run)

    def test_append_all_lands_together_once(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            first, second, key = name("s"), name("s"), name("key")
            ids = await store.append_all([(first, {"n": 1}), (second, {"n": 2}), (first, {"n": 3})],
                                         once=key, ttl_ms=10_000)
            assert ids is not None and len(ids) == 3
            assert [r.entry for r in await store.range(first)] == [{"n": 1}, {"n": 3}]
            assert [r.entry for r in await store.range(second)] == [{"n": 2}]
            # the same key again: nothing appended, None returned
            assert await store.append_all([(first, {"n": 4}), (second, {"n": 5})], once=key, ttl_ms=10_000) is None
            assert await store.length(first) == 2 and await store.length(second) == 1
            # what append_all remembers with its entries is its own, not `remember`'s
            assert not await store.remembered(key)
            assert await store.remember(key, 10_000)
            # without a key, always appended; with no entries, only the key is remembered
            assert await store.append_all([(first, {"n": 5})]) is not None
            other = name("key")
            assert await store.append_all([], once=other, ttl_ms=10_000) == []
            assert await store.remembered(other)
            assert await store.append_all([], once=other, ttl_ms=10_000) is None
            assert not await store.remember(other, 10_000)

        run(store, _run)

    def test_append_all_to_a_full_stream_stores_and_remembers_nothing(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            full, free, key, group = name("s"), name("s"), name("key"), name("g")
            await store.ensure_group(full, group)
            await store.append(full, {"n": 0})
            with pytest.raises(StoreFull):
                await store.append_all([(free, {"n": 1}), (full, {"n": 2})], once=key, ttl_ms=10_000, timeout=0.05)
            # (a cluster's streams lie on several servers: the free one may have taken its entry)
            assert await store.length(free) <= (0 if store.atomic_publish else 1) and await store.length(full) == 1
            # the key was not taken by the refused publish: with room, the same call lands whole
            await store.ack(full, group, [r.id for r in await store.read(full, group, "c")])
            assert await store.append_all([(free, {"n": 1}), (full, {"n": 2})], once=key, ttl_ms=10_000,
                                          timeout=0.05) is not None
            assert await store.length(free) == 1 and await store.length(full) == 2

        run(make_store(max_unacked=1), _run)

    def test_leases_of_a_group_are_taken_together_one_owner_each(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            group = name("group")
            assert await store.lease_many(group, ["p0", "p1"], "a", 150) == [True, True]
            assert await store.lease_many(group, ["p1", "p2"], "b", 150) == [False, True]
            assert await store.lease_many(group, ["p0", "p1", "p2"], "a", 150) == [True, True, False]  # renewed
            await store.release("p1", "b", group=group)  # not b's to give up
            assert await store.lease_many(group, ["p1"], "b", 150) == [False]
            await store.release("p1", "a", group=group)
            assert await store.lease_many(group, ["p1"], "b", 150) == [True]
            assert await store.lease("p1", "c", 150)  # a lease outside the group is another lease
            assert await store.lease_many(group, [], "a", 150) == []

        run(store, _run)

    def test_a_lease_has_one_owner_at_a_time(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            lease = name("lease")
            assert await store.lease(lease, "a", 150)
            assert not await store.lease(lease, "b", 150)
            assert await store.lease(lease, "a", 150)  # renewed by its owner
            await store.release(lease, "b")  # not b's to give up
            assert not await store.lease(lease, "b", 150)
            await store.release(lease, "a")
            assert await store.lease(lease, "b", 100)
            await asyncio.sleep(0.15)  # b's lease expired
            assert await store.lease(lease, "a", 100)

        run(store, _run)

    def test_quiet_sees_pending_unread_and_scheduled_work(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, other, group = name("s"), name("s"), name("g")
            await store.ensure_group(stream, group)
            assert await store.quiet([stream, other], group)
            (a,) = await fill(store, stream, 1)
            assert not await store.quiet([stream], group)  # unread
            await store.read(stream, group, "c1")
            assert not await store.quiet([stream], group)  # pending
            await store.schedule(stream, {"retry": 1}, store.now_ms() + 60_000)
            await store.ack(stream, group, [a])
            assert not await store.quiet([stream], group)  # a retry scheduled
            assert await store.quiet([other], group)  # someone else's retry does not count
            await store.release_due(now_ms=store.now_ms() + 120_000)
            assert not await store.quiet([stream], group)  # the retry, now unread
            (retry,) = await store.read(stream, group, "c1")
            await store.ack(stream, group, [retry.id])
            assert await store.quiet([stream], group)

        run(store, _run)

    def test_backlog_counts_pending_and_unread(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group, other = name("s"), name("g"), name("other")
            assert await store.backlog(stream, group) == 0  # no such stream or group
            await store.ensure_group(stream, group)
            await store.ensure_group(stream, other)
            a, b, c, _ = await fill(store, stream, 4)
            assert await store.backlog(stream, group) == 4
            await store.read(stream, group, "c1", count=3)
            assert await store.backlog(stream, group) == 4  # 3 pending, 1 unread
            await store.ack(stream, group, [a, b])
            assert await store.backlog(stream, group) == 2
            await store.delete(stream, [c])
            assert await store.backlog(stream, group) == 1
            assert await store.backlog(stream, other) == 3  # each group its own

        run(store, _run)

    # -- reading what delivery is doing (read-only) ----------------------------------------------

    def test_stream_stats_of_a_stream_never_written(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            assert await store.stream_stats([stream], group) == {stream: StreamStats(0, 0, False, 0, 0, None, {})}
            assert await store.stream_stats([], group) == {}
            assert await store.length(stream) == 0  # reading made nothing

        run(store, _run)

    def test_stream_stats_count_unread_pending_scheduled_and_consumers(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, other, group = name("s"), name("s"), name("g")
            await store.ensure_group(stream, group)
            assert (await store.stream_stats([stream], group))[stream] == StreamStats(0, 0, True, 0, 0, None, {})
            a, b, c, d, e = await fill(store, stream, 5)
            assert (await store.stream_stats([stream], group))[stream] == StreamStats(5, 0, True, 5, 0, a, {})
            await store.read(stream, group, "c1", count=2)
            await store.read(stream, group, "c2")
            await store.ack(stream, group, [a])
            await store.schedule(stream, {"retry": 1}, store.now_ms() + 60_000)
            await store.schedule(stream, {"retry": 2}, store.now_ms() + 60_000)
            await store.schedule(other, {"retry": 3}, store.now_ms() + 60_000)
            stats = await store.stream_stats([stream, other], group)
            assert stats[stream] == StreamStats(5, 2, True, 2, 2, b, {"c1": 1, "c2": 1})
            # `other` has no group: its entries are all unread (none here), its retry counts.
            assert stats[other] == StreamStats(0, 1, False, 0, 0, None, {})
            await store.ack(stream, group, [b, c])
            assert (await store.stream_stats([stream], group))[stream] == StreamStats(5, 2, True, 2, 0, d, {})
            await store.read(stream, group, "c1", count=2)
            await store.ack(stream, group, [d, e])
            assert (await store.stream_stats([stream], group))[stream] == StreamStats(5, 2, True, 0, 0, None, {})
            assert len(await store.scheduled(stream)) == 2  # nothing was released or read by looking
            # Tests share a server, and others read every schedule: leave nothing scheduled.
            assert await store.release_due(now_ms=store.now_ms() + 120_000, streams=[stream, other]) == 3

        run(store, _run)

    def test_stream_stats_of_a_stream_without_the_group(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, name("other"))
            a, _ = await fill(store, stream, 2)
            assert (await store.stream_stats([stream], group))[stream] == StreamStats(2, 0, False, 2, 0, a, {})

        run(store, _run)

    def test_stream_stats_after_deletions(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            a, b, c, _ = await fill(store, stream, 4)
            await store.read(stream, group, "c1")
            await store.delete(stream, [a, c])  # a pending entry, and an unread one
            assert (await store.stream_stats([stream], group))[stream] == StreamStats(2, 0, True, 2, 0, b, {})

        run(store, _run)

    def test_lease_holders_name_the_owner_of_each_live_lease(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            group = name("group")
            assert await store.lease_holders(group, ["p0", "p1"]) == {"p0": None, "p1": None}
            assert await store.lease_holders(group, []) == {}
            await store.lease_many(group, ["p0"], "a", 10_000)
            await store.lease_many(group, ["p1"], "b", 100)
            await store.lease("p2", "c", 10_000)  # not a lease of the group
            assert await store.lease_holders(group, ["p0", "p1", "p2"]) == {"p0": "a", "p1": "b", "p2": None}
            await asyncio.sleep(0.15)  # b's lease expired
            assert await store.lease_holders(group, ["p0", "p1"]) == {"p0": "a", "p1": None}
            await store.release("p0", "a", group=group)
            assert await store.lease_holders(group, ["p0"]) == {"p0": None}
            assert await store.lease_many(group, ["p1"], "d", 1000) == [True]  # looking took nothing

        run(store, _run)

    def test_live_members_are_read_without_beating(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            group, other = name("members"), name("members")
            assert await store.live_members([group]) == {group: []}
            assert await store.live_members([]) == {}
            await store.members(group, "b", 10_000)
            await store.members(group, "a", 100)
            await store.members(other, "c", 10_000)
            assert await store.live_members([group, other]) == {group: ["a", "b"], other: ["c"]}
            await asyncio.sleep(0.15)  # a stopped beating
            assert await store.live_members([group]) == {group: ["b"]}
            assert await store.members(group, "b", 10_000) == ["b"]  # looking added no one

        run(store, _run)

    def test_pending_lists_consumer_deliveries_and_growing_idle(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            a, b, c = await fill(store, stream, 3)
            await store.read(stream, group, "c1")
            await store.read(stream, group, "c2", count=2)
            before = await store.pending(stream, group)
            assert all(isinstance(p, Pending) for p in before)
            assert [(p.id, p.consumer, p.deliveries) for p in before] == [(a, "c1", 1), (b, "c2", 1), (c, "c2", 1)]
            assert all(0 <= p.idle_ms < 1000 for p in before)
            await asyncio.sleep(0.06)
            after = await store.pending(stream, group)
            assert [p.id for p in after] == [a, b, c]
            for old, new in zip(before, after, strict=True):
                assert new.idle_ms >= 50
                assert new.idle_ms > old.idle_ms

        run(store, _run)

    # -- claim ----------------------------------------------------------------------------------

    def test_claim_takes_only_entries_idle_long_enough(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            a, b = await fill(store, stream, 2)
            assert await store.claim(stream, group, "c2", min_idle_ms=0) == []  # nothing pending
            await store.read(stream, group, "c1")  # a
            await asyncio.sleep(0.12)
            await store.read(stream, group, "c1")  # b, fresh
            await asyncio.sleep(0.02)  # b is now idler than a will be once claimed
            claimed = await store.claim(stream, group, "c2", min_idle_ms=100)
            assert [(r.id, r.entry, r.deliveries) for r in claimed] == [(a, {"n": 0}, 2)]
            pending = await store.pending(stream, group)
            # Oldest first is by id: a's idle time started again, it still comes first.
            assert [(p.id, p.consumer, p.deliveries) for p in pending] == [(a, "c2", 2), (b, "c1", 1)]
            assert pending[0].idle_ms < 100
            # a's idle time started again: it is not idle long enough to be taken once more.
            assert await store.claim(stream, group, "c3", min_idle_ms=100) == []
            # Claiming does not make entries new: the group has nothing more to read.
            assert await store.read(stream, group, "c3") == []

        run(store, _run)

    def test_claim_respects_count_oldest_first(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 3)
            await store.read(stream, group, "c1", count=3)
            claimed = await store.claim(stream, group, "c2", min_idle_ms=0, count=2)
            assert ids_of(claimed) == ids[:2]
            owners = [(p.id, p.consumer) for p in await store.pending(stream, group)]
            assert owners == [(ids[0], "c2"), (ids[1], "c2"), (ids[2], "c1")]
            again = await store.claim(stream, group, "c3", min_idle_ms=0, count=10)
            assert [(r.id, r.deliveries) for r in again] == [(ids[0], 3), (ids[1], 3), (ids[2], 2)]
            assert await store.ack(stream, group, ids) == 3

        run(store, _run)

    def test_concurrent_claims_take_each_entry_once(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 20)
            await store.read(stream, group, "crashed", count=20)
            await asyncio.sleep(0.12)
            takers = [store.claim(stream, group, f"live{i}", min_idle_ms=100, count=20) for i in range(4)]
            claimed = [r.id for records in await asyncio.gather(*takers) for r in records]
            assert sorted(claimed) == ids
            assert {p.consumer for p in await store.pending(stream, group)} <= {f"live{i}" for i in range(4)}

        run(store, _run)

    # -- range and length -----------------------------------------------------------------------

    def test_range_from_an_offset_inclusive_with_count(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            ids = await fill(store, stream, 5)
            assert ids_of(await store.range(stream)) == ids
            assert ids_of(await store.range(stream, start=ids[2])) == ids[2:]
            assert ids_of(await store.range(stream, start=ids[1], count=2)) == ids[1:3]
            between = EntryId(ids[2].ms, ids[2].seq + 1)  # just after ids[2]: ids[3] or a gap before it
            assert ids_of(await store.range(stream, start=between)) == ids[3:]
            assert tags_of(await store.range(stream, start=ids[4])) == [4]
            assert await store.range(stream, start=EntryId(ids[4].ms + 1, 0)) == []

        run(store, _run)

    def test_range_and_length_ignore_groups(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 4)
            assert await store.length(stream) == 4
            await store.read(stream, group, "c1", count=4)
            assert await store.ack(stream, group, ids[:3]) == 3
            assert ids_of(await store.range(stream)) == ids
            assert tags_of(await store.range(stream, start=ids[1], count=2)) == [1, 2]
            assert await store.length(stream) == 4

        run(store, _run)

    # -- delete ---------------------------------------------------------------------------------

    def test_delete_removes_entries_and_their_pending_references(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group, other = name("s"), name("g"), name("other")
            await store.ensure_group(stream, group)
            await store.ensure_group(stream, other)
            a, b, c, d = await fill(store, stream, 4)
            await store.read(stream, group, "c1", count=2)  # a, b
            await store.read(stream, other, "c1", count=1)  # a
            assert await store.delete(stream, []) == 0
            assert await store.delete(stream, [a, c, EntryId(1, 0)]) == 2  # 1-0 never existed
            assert ids_of(await store.range(stream)) == [b, d]
            assert await store.length(stream) == 2
            assert [p.id for p in await store.pending(stream, group)] == [b]
            assert await store.pending(stream, other) == []
            assert await store.ack(stream, group, [a]) == 0
            assert await store.claim(stream, group, "c2", min_idle_ms=0) == [Record(b, {"n": 1}, 2)]
            assert ids_of(await store.read(stream, group, "c1", count=10)) == [d]  # c is gone
            assert await store.delete(stream, [a, c]) == 0
            assert await store.delete(name("nowhere"), [a]) == 0

        run(store, _run)

    def test_deleting_a_pending_entry_makes_room(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            (entry_id,) = await fill(store, stream, 1)
            await store.read(stream, group, "c1")
            waiting = asyncio.create_task(store.append(stream, {"n": 1}))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            assert await store.delete(stream, [entry_id]) == 1
            await asyncio.wait_for(waiting, 2.0)
            assert tags_of(await store.range(stream)) == [1]

        run(make_store(max_unacked=1), _run)

    # -- trim -----------------------------------------------------------------------------------

    def test_trim_without_groups_drops_freely(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            ids = await fill(store, stream, 5)
            assert await store.trim(stream) == 0
            assert await store.trim(stream, max_len=5) == 0
            assert await store.trim(stream, max_len=2) == 3
            assert await store.length(stream) == 2
            assert ids_of(await store.range(stream)) == ids[3:]
            assert await store.trim(stream, max_len=2) == 0
            assert await store.trim(stream, max_len=0) == 2
            assert await store.range(stream) == []

        run(store, _run)

    def test_trim_keeps_what_a_group_has_not_acked_or_read(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 6)
            assert await store.trim(stream, max_len=0) == 0  # nothing read yet
            await store.read(stream, group, "c1", count=3)
            assert await store.trim(stream, max_len=0) == 0  # read, not acked
            await store.ack(stream, group, ids[:2])
            assert await store.trim(stream, max_len=0) == 2
            assert ids_of(await store.range(stream)) == ids[2:]
            await store.ack(stream, group, [ids[2]])
            assert await store.trim(stream, max_len=0) == 1
            assert ids_of(await store.range(stream)) == ids[3:]
            # The group goes on reading where it was.
            assert ids_of(await store.read(stream, group, "c1", count=10)) == ids[3:]

        run(store, _run)

    def test_trim_keeps_what_any_group_needs(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, fast, slow = name("s"), name("fast"), name("slow")
            await store.ensure_group(stream, fast)
            await store.ensure_group(stream, slow)
            ids = await fill(store, stream, 4)
            await store.read(stream, fast, "c1", count=4)
            await store.ack(stream, fast, ids)
            assert await store.trim(stream, max_len=0) == 0
            await store.read(stream, slow, "c1", count=2)
            await store.ack(stream, slow, ids[:2])
            assert await store.trim(stream, max_len=1) == 2
            assert ids_of(await store.range(stream)) == ids[2:]

        run(store, _run)

    def test_trim_keeps_an_unacked_entry_older_than_acked_ones(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            a, b, c = await fill(store, stream, 3)
            await store.read(stream, group, "c1", count=3)
            await store.ack(stream, group, [b, c])
            dropped = await store.trim(stream, max_len=0)
            left = ids_of(await store.range(stream))
            assert a in left
            assert len(left) == 3 - dropped
            assert [p.id for p in await store.pending(stream, group)] == [a]

        run(store, _run)

    def test_trim_drops_entries_before_a_group_start(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            ids = await fill(store, stream, 3)
            await store.ensure_group(stream, group, start=ids[-1])  # will never read these
            assert await store.trim(stream, max_len=0) == 3
            (later,) = await fill(store, stream, 1, first=3)
            assert await store.trim(stream, max_len=0) == 0  # not read yet
            assert ids_of(await store.read(stream, group, "c1", count=10)) == [later]

        run(store, _run)

    def test_trim_by_age(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            old = await fill(store, stream, 2)
            await asyncio.sleep(0.15)
            new = await fill(store, stream, 1, first=2)
            assert await store.trim(stream, max_age_ms=100) == 0  # old but unread
            await store.read(stream, group, "c1", count=3)
            assert await store.trim(stream, max_age_ms=100) == 0  # old but unacked
            assert await store.ack(stream, group, old + new) == 3
            assert await store.trim(stream, max_age_ms=60_000) == 0  # acked but young
            assert await store.trim(stream, max_age_ms=100) == 2
            assert ids_of(await store.range(stream)) == new

        run(store, _run)

    # -- delayed schedule -----------------------------------------------------------------------

    def test_release_due_appends_due_entries_in_due_order(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, other = name("s"), name("o")
            base = store.now_ms()
            plan = [
                (base + 3000, stream, 3),
                (base + 1000, stream, 1),
                (base + 5000, stream, 5),
                (base + 2000, stream, 2),
                (base + 1500, other, 15),
            ]
            for due, target, n in plan:
                await store.schedule(target, {"n": n, "payload": {"k": ["v", None]}}, due)
            assert await store.length(stream) == 0
            soonest_first = [(due, target, n) for due, target, n in sorted(plan)]
            assert [(due, target, e["n"]) for due, target, e in await store.scheduled()] == soonest_first
            assert [e["n"] for _, _, e in await store.scheduled(stream)] == [1, 2, 3, 5]
            assert [e["n"] for _, _, e in await store.scheduled(other)] == [15]

            assert await store.release_due(now_ms=base + 2000) == 3  # due at base + 2000 is due
            released = await store.range(stream)
            assert tags_of(released) == [1, 2]
            assert released[0].entry == {"n": 1, "payload": {"k": ["v", None]}}
            assert tags_of(await store.range(other)) == [15]
            left = await store.scheduled()
            assert [(due, target, e["n"]) for due, target, e in left] == [
                (base + 3000, stream, 3),
                (base + 5000, stream, 5),
            ]
            # Each entry is either still scheduled or in its stream, once.
            in_streams = tags_of(await store.range(stream)) + tags_of(await store.range(other))
            assert sorted(in_streams + [e["n"] for _, _, e in left]) == [1, 2, 3, 5, 15]

            assert await store.release_due(now_ms=base + 2000) == 0
            assert await store.release_due(now_ms=base + 10_000) == 2
            assert tags_of(await store.range(stream)) == [1, 2, 3, 5]
            assert await store.scheduled(stream) == []

        run(store, _run)

    def test_release_due_defaults_to_the_store_clock(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            now = store.now_ms()
            await store.schedule(stream, {"n": 1}, now - 1)
            await store.schedule(stream, {"n": 2}, now + 60_000)
            assert await store.release_due() == 1
            assert tags_of(await store.range(stream)) == [1]
            assert [(due, e) for due, _, e in await store.scheduled(stream)] == [(now + 60_000, {"n": 2})]

        run(store, _run)

    def test_released_entries_reach_groups(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            now = store.now_ms()
            await store.schedule(stream, {"n": 1}, now)
            assert await store.read(stream, group, "c1") == []
            assert await store.release_due(now_ms=now) == 1
            assert [(r.entry, r.deliveries) for r in await store.read(stream, group, "c1")] == [({"n": 1}, 1)]

        run(store, _run)

    def test_the_same_entry_scheduled_twice_is_parked_twice(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            due = store.now_ms() + 1000
            await store.schedule(stream, {"n": 1}, due)
            await store.schedule(stream, {"n": 1}, due)
            assert await store.scheduled(stream) == [(due, stream, {"n": 1}), (due, stream, {"n": 1})]
            assert await store.release_due(now_ms=due) == 2
            assert tags_of(await store.range(stream)) == [1, 1]

        run(store, _run)

    def test_concurrent_releases_append_each_entry_once(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            base = store.now_ms()
            for n in range(30):
                await store.schedule(stream, {"n": n}, base + n)
            counts = await asyncio.gather(*(store.release_due(now_ms=base + 100) for _ in range(4)))
            assert sum(counts) == 30
            assert tags_of(await store.range(stream)) == list(range(30))
            assert await store.scheduled(stream) == []

        run(store, _run)

    # -- idempotency keys -----------------------------------------------------------------------

    def test_remember_within_ttl(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            key, other = name("key"), name("key")
            assert await store.remember(key, 150) is True
            assert await store.remember(key, 150) is False
            assert await store.remember(other, 150) is True
            await asyncio.sleep(0.08)
            assert await store.remember(key, 150) is False  # still remembered; does not extend the ttl
            await asyncio.sleep(0.12)
            assert await store.remember(key, 150) is True  # 200 ms after it was first seen
            assert await store.remember(key, 150) is False

        run(store, _run)

    # -- bounds and backpressure ----------------------------------------------------------------

    def test_full_stream_refuses_after_timeout(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            ids = await fill(store, stream, 2)
            started = time.monotonic()
            with pytest.raises(StoreFull):
                await store.append(stream, {"n": 2}, timeout=0.1)
            assert 0.08 <= time.monotonic() - started < 1.0
            with pytest.raises(StoreFull):
                await asyncio.wait_for(store.append(stream, {"n": 2}, timeout=0), 1.0)
            assert await store.length(stream) == 2
            # Room made later does not let a refused append in.
            await store.read(stream, group, "c1")
            assert await store.ack(stream, group, ids[:1]) == 1
            await asyncio.sleep(0.05)
            assert tags_of(await store.range(stream)) == [0, 1]
            await store.append(stream, {"n": 3}, timeout=0.1)
            assert tags_of(await store.range(stream)) == [0, 1, 3]

        run(make_store(max_unacked=2), _run)

    def test_full_stream_append_waits_for_an_ack(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            await fill(store, stream, 2)
            waiting = asyncio.create_task(store.append(stream, {"n": 2}, timeout=None))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            (first,) = await store.read(stream, group, "c1")
            await asyncio.sleep(0.05)
            assert not waiting.done()  # read is not acknowledged
            assert await store.ack(stream, group, [first.id]) == 1
            entry_id = await asyncio.wait_for(waiting, 2.0)
            assert ids_of(await store.range(stream))[-1] == entry_id
            assert tags_of(await store.range(stream)) == [0, 1, 2]

        run(make_store(max_unacked=2), _run)

    def test_room_needs_an_ack_from_every_group(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, g1, g2 = name("s"), name("g1"), name("g2")
            await store.ensure_group(stream, g1)
            await store.ensure_group(stream, g2)
            ids = await fill(store, stream, 2)
            await store.read(stream, g1, "c1", count=2)
            await store.read(stream, g2, "c1", count=2)
            await store.ack(stream, g1, ids)
            with pytest.raises(StoreFull):
                await store.append(stream, {"n": 2}, timeout=0.05)
            await store.ack(stream, g2, ids[:1])
            await store.append(stream, {"n": 2}, timeout=0.5)
            assert tags_of(await store.range(stream)) == [0, 1, 2]

        run(make_store(max_unacked=2), _run)

    def test_one_slot_lets_one_waiter_in(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            await fill(store, stream, 1)
            waiters = [asyncio.create_task(store.append(stream, {"n": n})) for n in (1, 2)]
            await asyncio.sleep(0.05)
            assert not any(w.done() for w in waiters)

            async def read_and_ack() -> None:
                (record,) = await store.read(stream, group, "c1")
                assert await store.ack(stream, group, [record.id]) == 1

            await read_and_ack()
            done, _ = await asyncio.wait(waiters, timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1
            await asyncio.sleep(0.05)
            assert sum(w.done() for w in waiters) == 1  # still one unacked at most
            assert await store.length(stream) == 2
            await read_and_ack()
            await asyncio.wait_for(asyncio.gather(*waiters), 2.0)
            assert sorted(tags_of(await store.range(stream))) == [0, 1, 2]

        run(make_store(max_unacked=1), _run)

    def test_a_cancelled_append_adds_nothing(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            (entry_id,) = await fill(store, stream, 1)
            waiting = asyncio.create_task(store.append(stream, {"n": 1}))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await store.read(stream, group, "c1")
            await store.ack(stream, group, [entry_id])
            await asyncio.sleep(0.05)
            assert tags_of(await store.range(stream)) == [0]
            await store.append(stream, {"n": 2}, timeout=0.5)
            assert tags_of(await store.range(stream)) == [0, 2]

        run(make_store(max_unacked=1), _run)

    def test_bounds_are_per_stream_and_only_with_groups(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            free, bounded, group = name("free"), name("bounded"), name("g")
            await store.ensure_group(bounded, group)
            await fill(store, bounded, 2)
            for n in range(20):
                await asyncio.wait_for(store.append(free, {"n": n}, timeout=0), 1.0)
            assert await store.length(free) == 20
            with pytest.raises(StoreFull):
                await store.append(bounded, {"n": 2}, timeout=0)

        run(make_store(max_unacked=2), _run)

    # -- concurrency ----------------------------------------------------------------------------

    def test_concurrent_appends_all_land(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream = name("s")
            ids = await asyncio.gather(*(store.append(stream, {"n": n}) for n in range(200)))
            assert len(set(ids)) == 200
            records = await store.range(stream)
            assert strictly_increasing(ids_of(records))
            assert sorted(ids_of(records)) == sorted(ids)
            assert {r.id: r.entry["n"] for r in records} == {i: n for n, i in enumerate(ids)}
            assert await store.length(stream) == 200

        run(store, _run)

    def test_concurrent_consumers_get_a_partition(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            total = 200
            got: dict[str, list[EntryId]] = {f"c{i}": [] for i in range(4)}

            async def produce() -> None:
                for n in range(total):
                    await store.append(stream, {"n": n})
                    if n % 10 == 0:
                        await asyncio.sleep(0)

            async def consume(consumer: str) -> None:
                while sum(len(ids) for ids in got.values()) < total:
                    records = await store.read(stream, group, consumer, count=7, block=0.05)
                    got[consumer].extend(ids_of(records))

            await asyncio.gather(produce(), *(consume(c) for c in got))
            everything = [i for ids in got.values() for i in ids]
            assert len(everything) == total
            assert sorted(everything) == ids_of(await store.range(stream))
            owners = {p.id: p.consumer for p in await store.pending(stream, group)}
            assert owners == {i: consumer for consumer, ids in got.items() for i in ids}

        run(store, _run)

    def test_concurrent_publishes_and_acks_each_get_their_own_answer(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            streams, group, key = [name("a"), name("b")], name("g"), name("k")
            for stream in streams:
                await store.ensure_group(stream, group)

            async def publish(n: int) -> list[EntryId] | None:
                entries = [(stream, {"n": n}) for stream in streams]
                return await store.append_all(entries, once=f"{key}-{n % 100}", ttl_ms=60_000)

            # 100 keys, the first 50 published twice at once: one of each pair lands, whole.
            answers = await asyncio.gather(*(publish(n) for n in range(150)))
            for n in range(50):
                assert (answers[n] is None) != (answers[n + 100] is None)
            landed = [ids for ids in answers if ids is not None]
            assert len(landed) == 100 and all(len(ids) == 2 for ids in landed)
            for number, stream in enumerate(streams):
                records = await store.range(stream)
                assert sorted(ids_of(records)) == sorted(ids[number] for ids in landed)
                assert sorted(r.entry["n"] % 100 for r in records) == list(range(100))
            read = await store.read(streams[0], group, "c", count=200)
            acks = await asyncio.gather(*(store.ack(streams[0], group, [r.id]) for r in read))
            assert acks == [1] * 100
            again = await asyncio.gather(*(store.ack(streams[0], group, [r.id]) for r in read[:10]),
                                         store.ack(streams[0], name("no-group"), [read[0].id]))
            assert again == [0] * 11
            assert await store.pending(streams[0], group) == []

        run(store, _run)

    def test_concurrent_appends_to_a_full_stream_wait_or_are_refused_each(self, make_store: MakeStore) -> None:
        async def _run(store: EventStore) -> None:
            stream, group = name("s"), name("g")
            await store.ensure_group(stream, group)
            outcomes = await asyncio.gather(*(store.append(stream, {"n": n}, timeout=0.1) for n in range(6)),
                                            return_exceptions=True)
            stored = [o for o in outcomes if isinstance(o, EntryId)]
            refused = [o for o in outcomes if isinstance(o, StoreFull)]
            assert len(stored) == 3 and len(refused) == 3, outcomes
            assert sorted(r.entry["n"] for r in await store.range(stream)) == sorted(
                n for n, o in enumerate(outcomes) if isinstance(o, EntryId))

        run(make_store(max_unacked=3), _run)

    # -- memberships ----------------------------------------------------------------------------

    def test_members_are_the_owners_that_keep_beating(self, store: EventStore) -> None:
        async def _run(store: EventStore) -> None:
            group = name("members")
            assert await store.members(group, "b", 150) == ["b"]
            assert await store.members(group, "a", 150) == ["a", "b"]
            assert await store.members(name("other"), "c", 150) == ["c"]  # memberships are apart
            await asyncio.sleep(0.1)
            assert await store.members(group, "a", 150) == ["a", "b"]
            await asyncio.sleep(0.1)  # b stopped beating 200 ms ago
            assert await store.members(group, "a", 150) == ["a"]
            assert await store.members(group, "b", 0) == ["a"]  # 0: leaves at once
            concurrent = await asyncio.gather(*(store.members(group, f"m{n}", 1000) for n in range(5)))
            assert concurrent[-1] == sorted(["a", *(f"m{n}" for n in range(5))])

        run(store, _run)
