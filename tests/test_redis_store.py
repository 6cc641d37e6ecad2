"""The event-store contract suite, unchanged, on a real Redis server (see conftest.py)."""

from __future__ import annotations

import asyncio

import pytest
from store_contract import MakeStore, StoreContract

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
