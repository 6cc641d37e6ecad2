"""The event-store contract suite, unchanged, on a real Redis server (see conftest.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from store_contract import MakeStore, StoreContract

from interlock.runtime.redis_store import RedisStore
from interlock.runtime.redis_wire import Wire
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
    """Group commit: 300 concurrent publishes and 300 acks are a handful of commands, not 600."""
    sent: list[str] = []
    send = Wire.send

    def counting(self: Wire, args: tuple[Any, ...], settle: Any, **options: Any) -> None:
        sent.append(args[0])
        send(self, args, settle, **options)

    monkeypatch.setattr(Wire, "send", counting)

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
    assert len([command for command in sent if command == "EVALSHA"]) <= 10, sent


def test_scripts_the_server_lost_are_loaded_again(redis_url: str) -> None:
    async def main() -> None:
        store = RedisStore(redis_url)
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        stream = f"flushed-{uuid.uuid4().hex}"
        try:
            assert await store.append_all([(stream, {"n": 1})], once=stream, ttl_ms=1000) is not None
            await admin.script_flush()  # as a restarted server would have
            assert await store.append_all([(stream, {"n": 2})], once=stream + "2", ttl_ms=1000) is not None
            assert await store.append_all([(stream, {"n": 3})], once=stream, ttl_ms=1000) is None
            assert [r.entry["n"] for r in await store.range(stream)] == [1, 2]
        finally:
            await admin.aclose()
            await store.close()

    asyncio.run(main())


def test_a_publish_sent_again_after_a_lost_reply_gets_its_own_ids_back(redis_url: str) -> None:
    """redis-py sends a round trip again when the connection dropped before the reply came:
    the publish had landed, and must not then be taken for a duplicate of itself."""
    async def main() -> None:
        store = RedisStore(redis_url)
        stream = f"resent-{uuid.uuid4().hex}"
        keys = [f"interlock:{{{stream}}}", f"interlock:{{{stream}}}:once:60000:2",
                f"interlock:{{{stream}}}:once:60000:1"]
        args = ["1", "the-key", "nonce1", store.now_ms() + 120_000, 1, 1, '{"n":1}']
        try:
            [first] = await store._batch(keys[0]).script(store._append_script, keys, args)
            # the same round trip, resent:
            [again] = await store._batch(keys[0]).script(store._append_script, keys, args)
            assert first[0] == "+" and again == first and len(first) == 2
            [other] = await store._batch(keys[0]).script(store._append_script, keys, [*args[:2], "nonce2", *args[3:]])
            assert other == ["=", first[1]]  # another publish of the same id: a duplicate
            assert [r.entry for r in await store.range(stream)] == [{"n": 1}]
        finally:
            await store.close()

    asyncio.run(main())


def test_idempotency_is_kept_beside_each_stream_one_hash_per_window(redis_url: str) -> None:
    """A publish remembers its key beside each of its streams, in one hash per stream and
    window (not a key per event), kept for one to two windows; a publish that reached only
    some of its streams (as a cluster can leave it) completes when published again, and no
    stream takes it twice."""
    async def main() -> None:
        store = RedisStore(redis_url)
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        a, b = f"win-a-{uuid.uuid4().hex}", f"win-b-{uuid.uuid4().hex}"
        try:
            window = 60_000
            for n in range(100):
                assert await store.append_all([(a, {"n": n})], once=f"k{n}", ttl_ms=window) is not None
            keys = sorted(await admin.keys(f"interlock:{{{a}}}:once:*"))
            assert len(keys) in (1, 2)  # (two when the publishes straddled a window's end)
            assert sum([await admin.hlen(key) for key in keys]) == 100
            assert await admin.keys("interlock:once:{k*") == []
            ttl = await admin.pttl(keys[-1])
            assert window <= ttl <= 2 * window
            # k7 reached a only: published to a and b, b alone takes it; then it is a duplicate.
            ids = await store.append_all([(a, {"n": 7}), (b, {"n": 7})], once="k7", ttl_ms=window)
            assert ids is not None and await store.length(a) == 100 and await store.length(b) == 1
            assert ids[0] == (await store.range(a))[7].id
            assert await store.append_all([(a, {"n": 7}), (b, {"n": 7})], once="k7", ttl_ms=window) is None
            assert await store.length(a) == 100 and await store.length(b) == 1
        finally:
            await admin.aclose()
            await store.close()

    asyncio.run(main())


def test_a_store_url_is_shown_without_its_password() -> None:
    from interlock.runtime.redis_errors import redact

    assert redact("redis://:s3cret@cache.internal:6380/2") == "redis://:***@cache.internal:6380/2"
    assert redact("rediss://app:s3cret@[::1]:6380/0?ssl_cert_reqs=none") == "rediss://app:***@[::1]:6380/0?ssl_cert_reqs=none"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cret" not in repr(RedisStore("redis://:s3cret@127.0.0.1:1/0"))
    # redis-py reads a password from the query too: hidden there as well.
    assert redact("redis://127.0.0.1:1/0?password=s3cret&socket_timeout=1") == \
        "redis://127.0.0.1:1/0?password=***&socket_timeout=1"
    assert "s3cret" not in repr(RedisStore("redis://127.0.0.1:1/0?password=s3cret"))


def _append_to_unreachable(url: str) -> pytest.ExceptionInfo[StoreError]:
    """The StoreError of an append to `url`, where no Redis listens."""
    async def main() -> None:
        store = RedisStore(url)
        try:
            await store.append("s", {"a": 1})
        finally:
            await store.close()

    with pytest.raises(StoreError) as raised:
        asyncio.run(main())
    return raised


def test_an_unreachable_redis_with_a_password_in_its_query_never_shows_it() -> None:
    raised = _append_to_unreachable("redis://127.0.0.1:1/0?password=s3cret")
    assert "s3cret" not in str(raised.value) and "password=***" in str(raised.value)


def test_an_unreachable_redis_with_a_password_never_shows_it() -> None:
    raised = _append_to_unreachable("redis://:s3cret@127.0.0.1:1/0")
    assert "redis://:***@127.0.0.1:1/0" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    assert raised.value.retryable


def test_tls_to_a_server_that_does_not_speak_it_is_a_prompt_store_error(redis_url: str) -> None:
    """rediss:// pointed at a plain-TCP server: the TLS handshake never completes; connecting
    times out (it used to hang for good) with a StoreError that says what may be wrong."""
    async def main() -> None:
        store = RedisStore(redis_url.replace("redis://", "rediss://", 1), connect_timeout=0.5)
        try:
            await store.append("s", {"a": 1})
        finally:
            await store.close()

    started = time.monotonic()
    with pytest.raises(StoreError, match=r"cannot reach Redis at rediss://.*does the server speak TLS"):
        asyncio.run(main())
    assert time.monotonic() - started < 30  # bounded (a generous bound: this is no timing test)


def test_an_error_reply_is_a_store_error_naming_it(redis_url: str) -> None:
    """A reply such as WRONGTYPE reaches the caller as a StoreError, not redis-py's exception,
    and a publish that meets it has stored nothing (a script that fails half-way keeps its writes:
    every key is checked first)."""
    async def main() -> None:
        store = RedisStore(redis_url)
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        good, bad = f"good-{uuid.uuid4().hex}", f"bad-{uuid.uuid4().hex}"
        try:
            await admin.set(f"interlock:{{{bad}}}", "not a stream")
            with pytest.raises(StoreError, match=r"of stream `bad-.*` holds a string") as raised:
                await store.append_all([(good, {"n": 1}), (bad, {"n": 2})], once=good, ttl_ms=10_000)
            assert not raised.value.retryable
            assert await store.length(good) == 0
            assert not await store.remembered(good)
        finally:
            await admin.aclose()
            await store.close()

    asyncio.run(main())


def test_an_entry_redis_py_cannot_send_fails_its_caller_alone(redis_url: str) -> None:
    """A lone surrogate (a file name decoded with surrogateescape) cannot be sent as UTF-8: its
    publish raises a StoreError, and the publishes sharing its round trip land (they used to
    wait forever, with the batch's task dead)."""
    async def main() -> None:
        store = RedisStore(redis_url)
        stream = f"surrogate-{uuid.uuid4().hex}"
        try:
            results = await asyncio.wait_for(asyncio.gather(
                *(store.append_all([(stream, {"n": n, "file": "report-\udcff.csv" if n == 3 else "ok"})],
                                   once=f"{stream}-{n}", ttl_ms=10_000) for n in range(10)),
                return_exceptions=True), 10)
            failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
            assert failed == [3]
            assert isinstance(results[3], StoreError) and "surrogate" in str(results[3])
            assert sorted(r.entry["n"] for r in await store.range(stream)) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
            assert not await store.remembered(f"{stream}-3")
        finally:
            await store.close()

    asyncio.run(main())


def test_an_idempotency_record_of_the_wrong_type_fails_its_publish_alone(redis_url: str) -> None:
    """Every key of every publish in a shared call is checked before any write: the publish
    whose stream's idempotency record holds a string fails alone, naming the key, with
    nothing stored; the others land."""
    async def main() -> None:
        store = RedisStore(redis_url)
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        stream, bad = f"oncekey-{uuid.uuid4().hex}", f"oncebad-{uuid.uuid4().hex}"
        try:
            bucket = store.now_ms() // 10_000
            for n in (bucket - 1, bucket, bucket + 1):  # (whichever window the publishes fall in)
                await admin.set(f"interlock:{{{bad}}}:once:10000:{n}", "not a hash")
            results = await asyncio.gather(
                *(store.append_all([(bad if n == 5 else stream, {"n": n})], once=f"{stream}-{n}", ttl_ms=10_000)
                  for n in range(10)),
                return_exceptions=True)
            failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
            assert failed == [5]
            assert f"interlock:{{{bad}}}:once:10000:" in str(results[5]) and "holds a string" in str(results[5])
            assert sorted(r.entry["n"] for r in await store.range(stream)) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
            assert await store.length(bad) == 0
        finally:
            await admin.aclose()
            await store.close()

    asyncio.run(main())


def test_a_script_the_server_keeps_losing_is_a_retryable_error() -> None:
    """NOSCRIPT after the script was loaded again (its scripts flushed again meanwhile): a
    failure that may clear, so the delivery tasks retry it and publishers may publish again."""
    from redis.exceptions import NoScriptError

    from interlock.runtime.redis_errors import Describer
    from interlock.runtime.store import StoreUnavailable

    error = Describer("redis://127.0.0.1:6379/0")(NoScriptError("NOSCRIPT No matching script."))
    assert isinstance(error, StoreUnavailable) and error.retryable


class TestRedisClusterStore(StoreContract):
    """The same contract on a Redis Cluster of 3 masters: every script and multi-key command
    keeps to one hash slot, and reads over streams of several slots (on several servers)
    block on all of them at once."""

    @pytest.fixture
    def make_store(self, cluster_url: str) -> MakeStore:
        def make(*, max_unacked: int | None = None) -> EventStore:
            return RedisStore(cluster_url, max_unacked=max_unacked)

        return make


def test_the_streams_of_targets_and_partitions_spread_over_the_masters(cluster_url: str) -> None:
    """Each target's stream and each partition of an ordered target is a hash tag of its own:
    on the test cluster's 3 masters, the 16 partitions of an ordered target and the streams
    of 6 targets each reach every master, and a store writing them talks to every master."""
    import redis.cluster

    from interlock.runtime.redis_nodes import parse_cluster_url

    seeds = parse_cluster_url(cluster_url)
    assert seeds is not None
    admin = redis.cluster.RedisCluster(host=seeds.seeds[0][0], port=seeds.seeds[0][1])
    try:
        def masters(keys: list[str]) -> set[str]:
            return {admin.get_node_from_key(key).name for key in keys}

        partitions = [f"interlock:{{deliveries.ordered.p{p}}}" for p in range(16)]
        targets = [f"interlock:{{deliveries.sink{k}}}" for k in range(6)]
        everyone = {node.name for node in admin.get_primaries()}
        assert len(everyone) == 3
        assert masters(partitions) == everyone and masters(targets) == everyone
    finally:
        admin.close()

    async def main() -> None:
        store = RedisStore(cluster_url)
        try:
            await asyncio.gather(*(store.append(f"deliveries.ordered.p{p}", {"p": p}) for p in range(16)))
            assert sorted(store._connection().nodes.batches) == sorted(everyone)
        finally:
            await store.close()

    asyncio.run(main())


def test_urls_with_odd_passwords_or_unknown_options_are_refused_without_showing_the_password() -> None:
    """A password with '#', '/' or '?' in it (urlsplit misreads it) is hidden all the same,
    and an option no Redis connection takes is refused when the store is made (from a
    review: the first publish then waited forever)."""
    from interlock.runtime.redis_errors import redact
    from interlock.stores import StoreURLError, open_store

    assert "s3cr" not in redact("redis://:s3cr#t@127.0.0.1:6379/0")
    assert "Zq" not in redact("redis+cluster://:Zq#9/x@Y?k@127.0.0.1:1,127.0.0.1:2")
    for url in ("redis://:s3cr#t@127.0.0.1:6379/0", "redis+cluster://:Zq#9/x@Y?k@127.0.0.1:1"):
        with pytest.raises(StoreURLError) as refused:
            open_store(url)
        assert "s3cr" not in str(refused.value) and "Zq" not in str(refused.value)
    for url in ("redis://127.0.0.1:1/0?foo=bar", "redis+cluster://127.0.0.1:1?read_from_replicas=true"):
        with pytest.raises(StoreURLError, match=r"unexpected keyword argument '(foo|read_from_replicas)'"):
            open_store(url)


def test_the_largest_event_is_a_store_option_in_the_url_or_given() -> None:
    """`max_event_bytes` (runtime/store.py) is the store's own option, taken out of the URL
    before redis-py reads it; nothing is connected."""
    from interlock.runtime.store import DEFAULT_MAX_EVENT_BYTES
    from interlock.stores import StoreURLError, open_store

    assert RedisStore("redis://127.0.0.1:1/0").max_event_bytes == DEFAULT_MAX_EVENT_BYTES
    store = open_store("redis://127.0.0.1:1/0?max_event_bytes=262144&min_replicas=1")
    assert isinstance(store, RedisStore) and store.max_event_bytes == 262144 and store.min_replicas == 1
    assert "max_event_bytes" not in store.url
    assert RedisStore("redis+cluster://127.0.0.1:1?max_event_bytes=5", max_event_bytes=7).max_event_bytes == 7
    with pytest.raises(StoreURLError, match="max_event_bytes must be a whole number of bytes"):
        open_store("redis://127.0.0.1:1/0?max_event_bytes=1MiB")


def test_a_cluster_store_starts_while_the_first_node_its_url_lists_is_down(cluster_url: str) -> None:
    """The slot map is read from whichever listed node answers before the first command
    goes anywhere (from a review: every command went to the first node until then)."""
    from redis_server import free_port

    dead = f"127.0.0.1:{free_port()}"
    url = cluster_url.replace("redis+cluster://", f"redis+cluster://{dead},", 1)

    async def main() -> None:
        store = RedisStore(url)
        try:
            await store.append(f"seed-{uuid.uuid4().hex}", {"n": 1})
        finally:
            await store.close()

    asyncio.run(main())


def test_a_cluster_url_naming_a_single_server_is_a_clear_error(redis_url: str) -> None:
    url = "redis+cluster://" + redis_url.removeprefix("redis://").rsplit("/", 1)[0]

    async def main() -> None:
        store = RedisStore(url)
        try:
            await store.append("s", {"n": 1})
        finally:
            await store.close()

    with pytest.raises(StoreError, match="is not a Redis Cluster"):
        asyncio.run(main())



def test_a_publish_whose_streams_had_it_still_remembers_it_for_its_sync_targets(redis_url: str, tmp_path: Any) -> None:
    """The event's streams took it but remembering it on its own failed (a crash between the
    two steps, a full master): the next publish of the id calls the sync handler again (at
    least once) and remembers it, so the one after calls it no more (from a review: every
    publish called it again, each reported a duplicate)."""
    import redis as sync_redis

    import interlock

    url = f"{redis_url.rsplit('/', 1)[0]}/13"
    sync_redis.Redis.from_url(url).flushdb()
    (tmp_path / "p.route").write_text("dead_letter dlq\ntarget now { mode sync }\n"
                                      "target later { mode async, dead_letter dlq }\n"
                                      "route r { on job.run to now, later }\n")
    router = interlock.load(str(tmp_path / "p.route"), store=url)
    calls: list[str] = []
    router.handler("now")(lambda event: calls.append(event.id))

    async def main() -> None:
        first = await router.publish("job.run", {}, id="once-1")
        assert not first.duplicate and calls == ["once-1"]
        admin = aioredis.Redis.from_url(url)
        assert await admin.delete("interlock:once:{idempotency.once-1}") == 1  # as if never remembered
        await admin.aclose()
        assert (await router.publish("job.run", {}, id="once-1")).duplicate
        assert (await router.publish("job.run", {}, id="once-1")).duplicate
        await router.store.close()

    asyncio.run(main())
    assert calls == ["once-1", "once-1"]
