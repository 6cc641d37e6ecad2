"""Many processes on one Redis: a publisher, two workers, one killed with SIGKILL mid-stream.

Every event must end handled or dead-lettered: the survivor claims what the killed worker
left pending, retries follow the policy, and the publisher's `drain` waits for work done in
other processes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster
from redis_cluster import client_for, flush

import interlock

WORKER = Path(__file__).parent / "redis_worker.py"
PROJECT = """
dead_letter dlq
target work { mode async, timeout 200ms, concurrency 4, dead_letter dlq,
              retry { attempts 3 backoff fixed 10ms } }
target ordered { mode async, timeout 200ms, concurrency 4, order by k, dead_letter dlq,
                 retry { attempts 5 backoff fixed 5ms } }
route jobs { on job.* to work }
route keyed { on keyed.* to ordered }
"""


@pytest.fixture(params=["server", "cluster"])
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty store for the test: a database of the test server, or the test cluster (its
    3 masters), so that every scenario runs on both."""
    url = request.getfixturevalue("redis_url" if request.param == "server" else "cluster_url")
    if request.param == "server":
        url = f"{url.rsplit('/', 1)[0]}/1"
    flush(url)
    return url


def _kill_clients(admin: Any) -> int:
    """Kill every client connection but the admin's own (on a cluster: on every master)."""
    if isinstance(admin, redis.cluster.RedisCluster):
        replies = admin.client_kill_filter(_type="normal", skipme=True,  # type: ignore[no-untyped-call]
                                           target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        return sum(replies.values()) if isinstance(replies, dict) else int(replies)
    return int(admin.client_kill_filter(_type="normal", skipme=True))


def _connected(client: Any) -> int:
    """Client connections of the server (on a cluster: of its masters, summed)."""
    if isinstance(client, redis.cluster.RedisCluster):
        infos = client.info("clients", target_nodes=redis.cluster.RedisCluster.PRIMARIES)  # type: ignore[no-untyped-call]
        return sum(info["connected_clients"] for info in infos.values())
    return int(client.info("clients")["connected_clients"])


def _workers(url: str, project: Path, names: tuple[str, ...] = ("a", "b")) -> list[subprocess.Popen[str]]:
    workers = [subprocess.Popen([sys.executable, str(WORKER), url, str(project), name, str(seed)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for seed, name in enumerate(names, 1)]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    return workers


def _stop(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(10)


def test_a_worker_killed_mid_stream_loses_nothing(store_url: str, tmp_path: Path) -> None:
    url = store_url
    client = client_for(url)
    project = tmp_path / "jobs.route"
    project.write_text(PROJECT)
    workers = _workers(url, project)
    try:
        publisher = interlock.load(str(project), store=url)  # no handlers: it only publishes
        ids: list[str] = []

        async def publish() -> None:
            async with publisher:
                for n in range(300):
                    receipt = await publisher.publish("job.run", {"n": n}, id=f"job-{n}")
                    ids.append(receipt.id)
                    if n == 150:
                        deadline = time.monotonic() + 10
                        while int(client.get("test:count:a") or 0) < 20 and time.monotonic() < deadline:
                            await asyncio.sleep(0.01)
                        os.kill(workers[0].pid, signal.SIGKILL)
                await publisher.drain(60)
            await publisher.store.close()

        asyncio.run(publish())
        acked = {member.decode() for member in client.smembers("test:acked")}
        dead = {entry.event.id for entry in publisher.dead_letters("dlq")}
        assert workers[0].wait(5) == -signal.SIGKILL
        assert int(client.get("test:count:a") or 0) >= 5  # it did work before it died
        missing = set(ids) - acked - dead
        assert not missing, sorted(missing)[:10]
        assert len(ids) == 300
    finally:
        _stop(workers)
        client.close()


def _assert_each_key_handled_in_order(client: redis.Redis, publisher: interlock.Router, count: int) -> None:
    """Events `keyed-N` (key N mod 7): each key's were handled once each, in publish order,
    but for those dead-lettered."""
    dead = {entry.event.id for entry in publisher.dead_letters("dlq")}
    for key in range(7):
        handled = [int(n) for n in client.lrange(f"test:order:{key}", 0, -1)]
        expected = [n for n in range(key, count, 7) if f"keyed-{n}" not in dead]
        assert handled == expected, (key, handled, expected)


def _lease_holders(client: redis.Redis, partitions: int, target: str = "ordered") -> list[bytes | None]:
    return [client.get(f"interlock:{{members.{target}}}:lease:deliveries.{target}.p{p}") for p in range(partitions)]


def test_per_key_order_holds_across_processes(store_url: str, tmp_path: Path) -> None:
    """Two worker processes share an ordered target; its handler fails at random, so
    deliveries are retried: each key's events are still handled in publish order, and
    the two processes share the partitions (the first one up hands half of them over)."""
    url = store_url
    client = client_for(url)
    project = tmp_path / "keyed.route"
    project.write_text(PROJECT)
    workers = _workers(url, project)
    try:
        def shared(holders: list[bytes | None]) -> bool:  # partition p to member p mod 2
            return None not in holders and len(set(holders)) == 2 and holders[:2] == holders[2:]

        deadline = time.monotonic() + 15
        while not shared(_lease_holders(client, 4)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shared(_lease_holders(client, 4)), _lease_holders(client, 4)
        publisher = interlock.load(str(project), store=url, partitions=4)

        async def publish() -> None:
            async with publisher:
                for n in range(200):
                    await publisher.publish("keyed.run", {"k": n % 7, "n": n}, id=f"keyed-{n}")
                await publisher.drain(60)
            await publisher.store.close()

        asyncio.run(publish())
        _assert_each_key_handled_in_order(client, publisher, 200)
        # keys 0 and 2 hash to partition 1, key 4 to 0: both processes had work
        assert int(client.get("test:count:a") or 0) > 0 and int(client.get("test:count:b") or 0) > 0
    finally:
        _stop(workers)
        client.close()


def test_partitions_are_handed_over_mid_stream_in_order(store_url: str, tmp_path: Path) -> None:
    """A second worker process comes up while the first delivers an ordered target, with
    retries under way: half the partitions move to it, and no key is delivered out of
    order or lost on the way."""
    url = store_url
    client = client_for(url)
    project = tmp_path / "keyed.route"
    project.write_text(PROJECT)
    workers = _workers(url, project, ("a",))
    count = 1000
    try:
        publisher = interlock.load(str(project), store=url, partitions=4)

        async def publish() -> None:
            async with publisher:
                for n in range(count):  # faster than `a` alone delivers: each key has deliveries queued
                    await publisher.publish("keyed.run", {"k": n % 7, "n": n}, id=f"keyed-{n}")
                    if n == 100:
                        workers.extend(_workers(url, project, ("b",)))
                    if n % 20 == 19:
                        await asyncio.sleep(0.005)
                await publisher.drain(60)
            await publisher.store.close()

        asyncio.run(publish())
        _assert_each_key_handled_in_order(client, publisher, count)
        assert int(client.get("test:count:b") or 0) > 0  # the newcomer took partitions over
        holders = _lease_holders(client, 4)
        assert len(set(holders)) == 2, holders
    finally:
        _stop(workers)
        client.close()


def test_an_unreachable_redis_is_a_clear_error_at_start(tmp_path: Path) -> None:
    project = tmp_path / "jobs.route"
    project.write_text(PROJECT)
    router = interlock.load(str(project), store="redis://127.0.0.1:1/0")

    async def start() -> None:
        async with router:
            pass

    started = time.monotonic()
    try:
        asyncio.run(start())
    except interlock.runtime.store.StoreError as exc:
        assert "cannot reach Redis at redis://127.0.0.1:1/0" in str(exc)
    else:
        raise AssertionError("started without a Redis")
    assert time.monotonic() - started < 15  # retried with backoff, then gave up


def test_connections_dropped_mid_run_lose_no_publish_that_returned(store_url: str, tmp_path: Path) -> None:
    """Every connection of the process is killed again and again while it publishes (many
    at once, so publishes share round trips) and delivers: each publish that returned is
    delivered, none twice counted as a duplicate of itself, the workers carry on, and the
    ordered target's keys keep their order."""
    url = store_url
    admin = client_for(url)
    project = tmp_path / "jobs.route"
    project.write_text(PROJECT)
    router = interlock.load(str(project), store=url, claim_idle_ms=300)
    handled: set[str] = set()
    receipts: dict[str, interlock.Receipt] = {}
    refused: list[str] = []
    kills: list[int] = []
    keyed: dict[int, list[int]] = {}

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        handled.add(event.id)

    @router.handler("ordered")
    async def ordered(event: interlock.Event) -> None:
        handled.add(event.id)
        keyed.setdefault(event.data["k"], []).append(event.data["n"])

    async def main() -> None:
        async with router:
            async def publisher(first: int) -> None:
                for n in range(first, 400, 8):
                    kind, name = ("job.run", f"job-{n}") if n % 2 else ("keyed.run", f"keyed-{n}")
                    try:
                        receipts[name] = await router.publish(kind, {"n": n, "k": n % 5}, id=name)
                    except interlock.runtime.store.StoreError:
                        refused.append(name)
                    await asyncio.sleep(0.001)

            async def killer() -> None:
                while len(receipts) + len(refused) < 400:
                    await asyncio.sleep(0.01)
                    kills.append(_kill_clients(admin))

            await asyncio.gather(killer(), *(publisher(first) for first in range(8)))
            await router.drain(60)
        await router.store.close()

    asyncio.run(main())
    admin.close()
    assert len(receipts) + len(refused) == 400
    assert sum(kills) >= 20, kills  # connections were really dropped, many times
    assert len(receipts) >= 300  # the client's retries carried most publishes through
    duplicates = sorted(i for i, r in receipts.items() if r.duplicate)
    assert not duplicates, duplicates  # a retried round trip is not a second publish
    assert set(receipts) <= handled, sorted(set(receipts) - handled)[:10]
    for key, seen in keyed.items():  # the ordered target: each key in publish order (first deliveries)
        firsts = list(dict.fromkeys(seen))
        assert firsts == sorted(firsts), (key, firsts)


def test_publish_sync_on_redis_from_code_that_is_not_async(store_url: str, tmp_path: Path) -> None:
    """`publish_sync` and `dead_letters` outside `with router:` work every time, on connections
    kept from call to call."""
    url = store_url
    project = tmp_path / "jobs.route"
    project.write_text(PROJECT)
    router = interlock.load(str(project), store=url)
    client = client_for(url)
    before = _connected(client)
    receipts = [router.publish_sync("job.run", {"n": n}, id=f"sync-{n}") for n in range(30)]
    assert [r.targets for r in receipts] == [frozenset({"work"})] * 30
    assert client.xlen("interlock:{deliveries.work}") == 30
    assert router.dead_letters("dlq") == []
    # the connections are kept from call to call, not opened (and left open) for each
    assert _connected(client) - before <= 4 * (1 if store_url.startswith("redis://") else 3)  # (per master)
    client.close()


def test_deliveries_waiting_too_long_in_one_instance_are_not_also_claimed_by_another(
        store_url: str, tmp_path: Path) -> None:
    """An instance reads deliveries in batches; one that waited in its queue until another
    instance could claim it as abandoned is left to that claim, not delivered twice."""
    # The margin kept for a stall of the event loop is a quarter of the claim delay (250 ms
    # with 1 s; with 300 ms, 75 ms was not enough in full runs); what earlier tests of the run
    # leave to the garbage collector (clients of clusters killed under them, closed by their
    # finalizers) stalled it mid-test: collected now, before the clock starts.
    gc.collect()
    url = store_url
    project = tmp_path / "slow.route"
    project.write_text("""
dead_letter dlq
target slow { mode async, timeout 50ms, concurrency 1, dead_letter dlq }
route all { on job.* to slow }
""")
    calls: list[tuple[str, str]] = []

    def instance(name: str) -> interlock.Router:
        router = interlock.load(str(project), store=url, claim_idle_ms=1000)

        @router.handler("slow")
        async def slow(event: interlock.Event) -> None:
            calls.append((name, event.id))
            await asyncio.sleep(0.01)

        return router

    first, second = instance("a"), instance("b")

    async def main() -> None:
        async with first:
            for n in range(150):  # more than one instance delivers before the claim delay
                await first.publish("job.run", {"n": n}, id=f"slow-{n}")
            await asyncio.sleep(0.2)
            async with second:
                await first.drain(30)
        await first.store.close()
        await second.store.close()

    asyncio.run(main())
    ids = [i for _, i in calls]
    assert sorted(set(ids)) == sorted(f"slow-{n}" for n in range(150))
    assert len(ids) == len(set(ids)), [i for i in set(ids) if ids.count(i) > 1][:10]
    assert {name for name, _ in calls} == {"a", "b"}


def test_an_instance_that_stops_hands_its_keys_over_in_order(store_url: str, tmp_path: Path) -> None:
    """An instance stops while a key waits for a retry with a later event held behind it:
    it finishes that key before letting its partitions go, so the next holder does not
    deliver the later event first."""
    url = store_url
    project = tmp_path / "keyed.route"
    project.write_text("""
dead_letter dlq
target ordered { mode async, timeout 200ms, order by k, dead_letter dlq, retry { attempts 3 backoff fixed 300ms } }
route keyed { on keyed.* to ordered }
""")
    handled: list[tuple[str, int, int]] = []

    def instance(name: str) -> interlock.Router:
        router = interlock.load(str(project), store=url, partitions=2, lease_ms=1500)

        @router.handler("ordered")
        async def ordered(event: interlock.Event) -> None:
            if event.data["n"] == 1 and event.attempt == 1:
                raise ConnectionError("first attempt fails")
            handled.append((name, event.data["n"], event.attempt))

        return router

    first, second = instance("a"), instance("b")

    async def main() -> None:
        async with first:  # alone: it holds every partition
            await asyncio.sleep(0.2)
            await first.publish("keyed.run", {"k": "K", "n": 1})
            await first.publish("keyed.run", {"k": "K", "n": 2})
            await asyncio.sleep(0.05)  # n=1 failed, its retry waits; n=2 is held behind it
            await second.__aenter__()
        try:
            await second.drain(10)
        finally:
            await second.__aexit__(None, None, None)
        await first.store.close()
        await second.store.close()

    asyncio.run(main())
    assert [n for _, n, _ in handled] == [1, 2], handled  # (by `a` when it had read them before it stopped)


def test_an_instance_whose_lease_ran_out_stops_delivering_its_partitions(store_url: str, tmp_path: Path) -> None:
    """An instance that cannot renew its leases (its store calls fail) stops delivering the
    partitions once their leases may have run out; another instance takes them over and
    delivers every event, each once."""
    url = store_url
    project = tmp_path / "keyed.route"
    project.write_text("""
dead_letter dlq
target ordered { mode async, timeout 200ms, order by k, dead_letter dlq }
route keyed { on keyed.* to ordered }
""")
    handled: list[tuple[str, int]] = []

    def instance(name: str) -> interlock.Router:
        router = interlock.load(str(project), store=url, partitions=2, lease_ms=600)

        @router.handler("ordered")
        async def ordered(event: interlock.Event) -> None:
            handled.append((name, event.data["n"]))

        return router

    first, second = instance("a"), instance("b")

    async def cut_off(*_args: object, **_kwargs: object) -> bool:
        raise interlock.runtime.store.StoreUnavailable("cannot reach Redis (a test's cut)")

    async def main() -> None:
        async with first:
            await asyncio.sleep(0.1)  # it holds both partitions
            first.store.lease_many = first.store.members = cut_off  # type: ignore[method-assign]
            await asyncio.sleep(0.7)  # its leases ran out
            for n in range(20):
                await first.publish("keyed.run", {"k": n % 3, "n": n})
            await asyncio.sleep(0.3)
            assert handled == []  # not delivered by an instance that no longer holds them
            async with second:
                await second.drain(10)
        await first.store.close()
        await second.store.close()

    asyncio.run(main())
    assert sorted(n for _, n in handled) == list(range(20))
    assert {name for name, _ in handled} == {"b"}


def test_a_retry_left_by_the_last_holder_comes_before_later_events_of_its_key(store_url: str, tmp_path: Path) -> None:
    """An instance stops (or dies) while a key waits for a retry longer than its hand-over:
    the next holder of the partition holds that key until the retry comes, so the key's later
    events are not delivered first (they were, until the retry turned up at a sweep)."""
    url = store_url
    project = tmp_path / "keyed.route"
    project.write_text("""
dead_letter dlq
target ordered { mode async, timeout 200ms, order by k, dead_letter dlq, retry { attempts 3 backoff fixed 1500ms } }
route keyed { on keyed.* to ordered }
""")
    handled: list[tuple[str, int, int]] = []

    def instance(name: str) -> interlock.Router:
        router = interlock.load(str(project), store=url, partitions=1, lease_ms=300)

        @router.handler("ordered")
        async def ordered(event: interlock.Event) -> None:
            if event.data["n"] == 0 and event.attempt == 1:
                raise ConnectionError("flaky downstream")
            handled.append((name, event.data["n"], event.attempt))

        return router

    first, second = instance("a"), instance("b")

    async def main() -> None:
        async with first:
            await first.publish("keyed.run", {"k": "same", "n": 0})
            for _ in range(300):
                if await first.store.scheduled():
                    break
                await asyncio.sleep(0.01)
        async with second:
            for n in range(1, 4):
                await second.publish("keyed.run", {"k": "same", "n": n})
            await second.drain(10)
        await first.store.close()
        await second.store.close()

    asyncio.run(main())
    assert [(n, attempt) for _, n, attempt in handled] == [(0, 2), (1, 1), (2, 1), (3, 1)]


def test_a_delivery_left_while_its_lease_looked_lapsed_is_taken_back_while_the_partition_is_held(
        store_url: str, tmp_path: Path) -> None:
    # Under load, a lease renewal can come late: a delivery that finds its partition's lease
    # run out is left pending in the store. When the renewal then lands and the partition is
    # still this process's, nobody else will claim it: this process must take it back (it
    # used to wait for the audit of pending deliveries, a minute later).
    url = store_url
    (tmp_path / "p.route").write_text(PROJECT)
    router = interlock.load(str(tmp_path / "p.route"), store=url)
    seen: list[str] = []

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        pass

    @router.handler("ordered")
    async def ordered(event: interlock.Event) -> None:
        seen.append(event.id)

    async def main() -> None:
        async with router:
            deliverer = router.engine.deliverer
            assert deliverer is not None
            may_run = deliverer._may_run
            lapsed = {"e1"}

            def looks_lapsed(stream: str, record: Any, target: str) -> bool:
                if record.entry["event"].id in lapsed:
                    lapsed.discard(record.entry["event"].id)
                    return False  # as if the lease had run out just now
                return may_run(stream, record, target)

            deliverer._may_run = looks_lapsed  # type: ignore[method-assign]
            await router.publish("keyed.x", {"k": "a"}, id="e1")
            await router.publish("keyed.x", {"k": "b"}, id="e2")
            await router.drain(10)

    asyncio.run(main())
    assert sorted(seen) == ["e1", "e2"]


def test_an_entry_that_is_not_a_delivery_does_not_hold_up_those_read_with_it(
        store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Entries of another writer among deliveries (not JSON, a short array, no field `e`):
    logged and left pending; the deliveries read in the same batch are delivered."""
    url = store_url
    project = tmp_path / "jobs.route"
    project.write_text(PROJECT)
    router = interlock.load(str(project), store=url)
    handled: list[int] = []

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        handled.append(event.data["n"])

    client = client_for(url)

    async def main() -> None:
        publisher = interlock.load(str(project), store=url)  # (no handler: it only publishes)
        async with publisher:
            for n in range(3):
                await publisher.publish("job.run", {"n": n})
            client.xadd("interlock:{deliveries.work}", {"e": "not json"})
            client.xadd("interlock:{deliveries.work}", {"e": "[2, 1]"})
            client.xadd("interlock:{deliveries.work}", {"x": "no e"})
            for n in range(3, 6):
                await publisher.publish("job.run", {"n": n})
        async with router:
            for _ in range(100):
                if len(handled) == 6:
                    break
                await asyncio.sleep(0.05)

    asyncio.run(main())
    assert sorted(handled) == list(range(6))
    assert client.xpending("interlock:{deliveries.work}", "interlock")["pending"] == 3
    assert caplog.text.count("is not a delivery") == 3
    client.close()
