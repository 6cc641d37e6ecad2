"""The event-store contract suite, unchanged, on a real Redis server (see conftest.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from store_contract import MakeStore, StoreContract

from interlock.runtime.redis_batch import Batch
from interlock.runtime.redis_store import RedisStore
from interlock.runtime.store import EventStore, StoreError


class TestRedisStore(StoreContract):
    @pytest.fixture
    def make_store(self, redis_url: str) -> MakeStore:
        def make(*, max_unacked: int | None = None) -> EventStore:
            return RedisStore(redis_url, max_unacked=max_unacked)

        return make


def test_an_unreachable_redis_is_a_clear_error() -> None:
    async def main() -> None:
        store = RedisStore("redis://127.0.0.1:1/0")
        try:
            await store.append("s", {"a": 1})
        finally:
            await store.close()

    with pytest.raises(StoreError, match=r"cannot reach Redis at redis://127\.0\.0\.1:1/0"):
        asyncio.run(main())


def test_concurrent_callers_share_round_trips(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: 300 concurrent publishes and 300 acks take a handful of round trips, not 600."""
    trips: list[int] = []
    execute = Batch._execute

    async def counting(self: Batch, commands: list[Any], sources: dict[str, str]) -> list[Any]:
        trips.append(len(commands))
        return await execute(self, commands, sources)

    monkeypatch.setattr(Batch, "_execute", counting)

    async def main() -> None:
        store = RedisStore(redis_url)
        stream = f"batch-{uuid.uuid4().hex}"
        try:
            await store.ensure_group(stream, "g")
            ids = await asyncio.gather(*(store.append_all([(stream, {"n": n})], once=f"{stream}-{n}", ttl_ms=1000)
                                         for n in range(300)))
            assert all(i is not None for i in ids)
            records = await store.read(stream, "g", "c", count=300)
            assert await asyncio.gather(*(store.ack(stream, "g", [r.id]) for r in records)) == [1] * 300
        finally:
            await store.close()

    asyncio.run(main())
    assert len(trips) <= 10, trips


def test_scripts_the_server_lost_are_loaded_again(redis_url: str) -> None:
    async def main() -> None:
        store = RedisStore(redis_url)
        stream = f"flushed-{uuid.uuid4().hex}"
        try:
            assert await store.append_all([(stream, {"n": 1})], once=stream, ttl_ms=1000) is not None
            await store.client.script_flush()  # as a restarted server would have
            assert await store.append_all([(stream, {"n": 2})], once=stream + "2", ttl_ms=1000) is not None
            assert await store.append_all([(stream, {"n": 3})], once=stream, ttl_ms=1000) is None
            assert [r.entry["n"] for r in await store.range(stream)] == [1, 2]
        finally:
            await store.close()

    asyncio.run(main())


def test_a_publish_sent_again_after_a_lost_reply_gets_its_own_ids_back(redis_url: str) -> None:
    """redis-py sends a round trip again when the connection dropped before the reply came:
    the publish had landed, and must not then be taken for a duplicate of itself."""
    async def main() -> None:
        store = RedisStore(redis_url)
        stream = f"resent-{uuid.uuid4().hex}"
        keys = [f"interlock:once:{{{stream}}}", f"interlock:{{{stream}}}"]
        args = ["1", 60_000, "nonce1", 1, '{"n":1}']
        try:
            first = await store._batch.script(store._append_script, keys, args)
            again = await store._batch.script(store._append_script, keys, args)  # the same round trip, resent
            assert again == first and len(first) == 1
            other = await store._batch.script(store._append_script, keys, [*args[:2], "nonce2", *args[3:]])
            assert other is None  # another publish of the same id: a duplicate
            assert [r.entry for r in await store.range(stream)] == [{"n": 1}]
        finally:
            await store.close()

    asyncio.run(main())
