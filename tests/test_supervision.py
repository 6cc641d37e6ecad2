"""Supervision of the router's background tasks: a task that fails is logged and started again;
a failure that trying again does not cure reaches the caller at the next `drain` or `publish`;
a transient store error does not."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import pytest

import interlock
from interlock.runtime.outcomes import DeliveryError
from interlock.runtime.store import StoreError, StoreUnavailable

PROJECT = """
dead_letter dlq
target work { mode async, dead_letter dlq, retry { attempts 3 backoff fixed 5ms } }
route all { on job.* to work }
"""


def load() -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(PROJECT)
    return interlock.load(str(folder / "p.route"))


def failing_once(router: interlock.Router, error: Exception) -> list[int]:
    """Make the acknowledgement task raise `error` on its first round; counts its rounds.
    (Deliveries are then acknowledged in the store: the memory store's fast path, which has
    nothing to acknowledge, is turned off by keeping delivered entries a while.)"""
    router.engine.retain_delivered_ms = 60_000
    acker = router.engine.acker
    send = acker.send
    rounds: list[int] = []

    async def flaky() -> None:
        rounds.append(1)
        if len(rounds) == 1:
            acker.wake.set()  # what was queued is sent when it starts again
            raise error
        await send()

    acker.send = flaky  # type: ignore[method-assign]
    return rounds


def test_a_task_that_fails_is_started_again_and_its_failure_reaches_drain(caplog: pytest.LogCaptureFixture) -> None:
    router = load()
    handled: list[str] = []

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        handled.append(event.id)

    rounds = failing_once(router, RuntimeError("a bug in a background task"))

    async def main() -> None:
        async with router:
            await router.publish("job.run", {}, id="j1")
            with pytest.raises(DeliveryError, match=r"acknowledgements.*a bug in a background task"):
                await router.drain(5)
            await router.drain(5)  # reported once; delivery went on
            assert router.engine.healthy()
            await router.publish("job.run", {}, id="j2")
            await router.drain(5)
        assert not router.engine.healthy()

    with caplog.at_level(logging.WARNING, logger="interlock.runtime"):
        asyncio.run(main())
    assert handled == ["j1", "j2"]
    assert len(rounds) >= 2
    assert any(r.levelno == logging.ERROR and "acknowledgements failed" in r.getMessage() for r in caplog.records)


def test_a_transient_store_error_is_retried_and_not_reported() -> None:
    router = load()
    handled: list[str] = []

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        handled.append(event.id)

    failing_once(router, StoreUnavailable("cannot reach the store (a test's cut)"))

    async def main() -> None:
        async with router:
            await router.publish("job.run", {}, id="j1")
            await router.drain(5)  # no DeliveryError: the failure cured itself
            await router.publish("job.run", {}, id="j2")
            await router.drain(5)

    asyncio.run(main())
    assert handled == ["j1", "j2"]


def test_a_fault_also_reaches_the_next_publish_before_anything_is_stored() -> None:
    router = load()

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        pass

    failing_once(router, StoreError("WRONGTYPE a key of the wrong kind"))

    async def main() -> None:
        async with router:
            await router.publish("job.run", {}, id="j1")
            for _ in range(100):  # until the acknowledgement task has failed
                if router.engine.supervisor.fault is not None:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(DeliveryError, match="WRONGTYPE"):
                await router.publish("job.run", {}, id="j2")
            receipt = await router.publish("job.run", {}, id="j2")  # nothing was stored: not a duplicate
            assert not receipt.duplicate
            await router.drain(5)

    asyncio.run(main())


HOSTILE = """
dead_letter dlq
target t { mode async, timeout 1s, dead_letter dlq, order by k, retry { attempts 2 backoff fixed 5ms } }
route r { on job.* to t }
"""


def load_text(text: str) -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(text)
    return interlock.load(str(folder / "p.route"))


def test_a_handler_raising_cancelled_error_is_a_failure_not_a_dead_worker() -> None:
    """A handler that raises CancelledError itself (a client library cancelled inside it) fails
    that attempt; the deliveries behind it still run (the worker used to end silently)."""
    router = load_text(HOSTILE)
    calls: list[int] = []

    @router.handler("t")
    async def handler(event: interlock.Event) -> None:
        calls.append(event.data["n"])
        if event.data["n"] == 0:
            raise asyncio.CancelledError()

    async def main() -> None:
        async with router:
            for n in range(5):
                await router.publish("job.run", {"n": n, "k": "same"})
            await router.drain(5)
        dead = router.dead_letters("dlq")
        assert [(d.event.data["n"], d.attempts[-1].kind) for d in dead] == [(0, "CancelledError")]

    asyncio.run(main())
    assert calls == [0, 0, 1, 2, 3, 4]


def test_an_exception_whose_message_cannot_be_shown_is_dead_lettered() -> None:
    """An exception whose __str__ raises (or holds a lone surrogate) still becomes an attempt
    in the history; its key is let go (it used to stay held for good)."""
    router = load_text(HOSTILE)

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    @router.handler("t")
    async def handler(event: interlock.Event) -> None:
        if event.data["n"] == 0:
            raise Unprintable()
        if event.data["n"] == 1:
            raise OSError("cannot open /data/report-\udcff.csv")

    async def main() -> None:
        async with router:
            for n in range(3):
                await router.publish("job.run", {"n": n, "k": "same"})
            await router.drain(5)
        dead = {d.event.data["n"]: d.attempts[-1] for d in router.dead_letters("dlq")}
        assert set(dead) == {0, 1}
        assert dead[0].kind == "Unprintable" and "cannot be shown" in dead[0].message
        assert dead[1].message == "cannot open /data/report-\\udcff.csv"

    asyncio.run(main())


def test_entering_a_running_router_again_is_an_error_that_leaves_it_running() -> None:
    router = load()
    handled: list[str] = []

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        handled.append(event.id)

    async def main() -> None:
        async with router:
            with pytest.raises(DeliveryError, match="already running"):
                await router.__aenter__()
            await router.publish("job.run", {}, id="j1")
            await router.drain(5)
            assert router.engine.healthy()

    asyncio.run(main())
    assert handled == ["j1"]


def test_stopping_while_a_retry_is_being_scheduled_returns() -> None:
    """A task woken in the same loop iteration as its cancellation (a retry scheduled as the
    service stops) still stops: on Python 3.11 `wait_for` used to swallow that cancellation,
    and leaving `async with router:` hung for good."""
    router = load_text(HOSTILE.replace("backoff fixed 5ms", "backoff fixed 5s"))
    failing = asyncio.Event()

    @router.handler("t")
    async def handler(event: interlock.Event) -> None:
        failing.set()
        raise ConnectionError("down")

    async def main() -> None:
        await router.__aenter__()
        await router.publish("job.run", {"n": 0, "k": "a"})
        await failing.wait()
        async with asyncio.timeout(10):
            await router.__aexit__(None, None, None)

    asyncio.run(main())


def test_a_retry_waiting_when_the_router_stopped_comes_before_later_events_of_its_key() -> None:
    """Restarted, a router holds the keys of retries left in the schedule until they come: a
    later event of the key is not delivered first (it was)."""
    router = load_text(HOSTILE.replace("backoff fixed 5ms", "backoff fixed 300ms"))
    handled: list[tuple[int, int]] = []

    @router.handler("t")
    async def handler(event: interlock.Event) -> None:
        if event.data["n"] == 0 and event.attempt == 1:
            raise ConnectionError("down")
        handled.append((event.data["n"], event.attempt))

    async def main() -> None:
        async with router:
            await router.publish("job.run", {"n": 0, "k": "a"})
            for _ in range(200):
                if await router.store.scheduled():
                    break
                await asyncio.sleep(0.01)
        async with router:
            await router.publish("job.run", {"n": 1, "k": "a"})
            await router.drain(5)

    asyncio.run(main())
    assert handled == [(0, 2), (1, 1)]


def test_concurrent_publishes_of_one_id_call_a_sync_target_once() -> None:
    """Two publishes of the same id at once (a client retrying after a timeout): the sync
    handler runs once, the second publish is the duplicate (both used to call it)."""
    router = load_text("""
dead_letter dlq
target charge { mode sync, timeout 1s, dead_letter dlq, retry { attempts 1 } }
target note { mode async, dead_letter dlq }
route r { on pay.* to charge, note }
""")
    charged: list[str] = []

    @router.handler("charge")
    async def charge(event: interlock.Event) -> dict[str, bool]:
        charged.append(event.id)
        await asyncio.sleep(0.05)  # a remote call
        return {"ok": True}

    @router.handler("note")
    async def note(event: interlock.Event) -> None:
        pass

    async def main() -> None:
        async with router:
            first, second = await asyncio.gather(router.publish("pay.x", {}, id="pay-1"),
                                                 router.publish("pay.x", {}, id="pay-1"))
            assert (first.duplicate, second.duplicate) == (False, True)
            await router.drain(5)
        assert router.engine._publishing == {}

    asyncio.run(main())
    assert charged == ["pay-1"]


def test_a_hanging_def_handler_keeps_its_threads_to_its_own_target() -> None:
    """`def` handlers run in threads of their target's own: one target's handlers hanging past
    their timeout leave the other targets' calls running (they used to starve every `def`)."""
    import threading

    router = load_text("""
dead_letter dlq
target slow { mode async, timeout 50ms, concurrency 2, dead_letter dlq, retry { attempts 1 } }
target fast { mode async, timeout 2s, dead_letter dlq, retry { attempts 1 } }
route s { on slow.* to slow }
route f { on fast.* to fast }
""")
    release = threading.Event()
    fast_calls: list[str] = []

    @router.handler("slow")
    def slow(event: interlock.Event) -> None:
        release.wait(10)

    @router.handler("fast")
    def fast(event: interlock.Event) -> None:
        fast_calls.append(event.id)

    async def main() -> None:
        async with router:
            for n in range(40):  # more hung calls than the default executor has threads
                await router.publish("slow.run", {}, id=f"s{n}")
            await asyncio.sleep(0.5)
            for n in range(10):
                await router.publish("fast.run", {}, id=f"f{n}")
            await router.drain(10)
        release.set()

    asyncio.run(main())
    assert len(fast_calls) == 10
    assert {d.target for d in router.dead_letters("dlq")} == {"slow"}



def test_a_retry_whose_release_failed_is_released_once_the_store_is_back(redis_url: str) -> None:
    """The scheduler forgets no due retry when releasing it fails (the store away): it used to
    drop the stream's due time first, so a partition's retry waited for the sweep that looks at
    partitions (every sixth: a minute by default)."""
    import redis as sync_redis

    url = f"{redis_url.rsplit('/', 1)[0]}/11"
    sync_redis.Redis.from_url(url).flushdb()
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(HOSTILE.replace("backoff fixed 5ms", "backoff fixed 50ms"))
    router = interlock.load(str(folder / "p.route"), store=url, partitions=2)
    handled: list[tuple[int, int]] = []

    @router.handler("t")
    async def handler(event: interlock.Event) -> None:
        if event.attempt == 1:
            raise ConnectionError("down")
        handled.append((event.data["n"], event.attempt))

    store = router.store
    release = store.release_due
    failures: list[int] = []

    async def flaky(**kwargs: object) -> int:
        if not failures:
            failures.append(1)
            raise StoreUnavailable("cannot reach the store (a test's cut)")
        return await release(**kwargs)  # type: ignore[arg-type]

    store.release_due = flaky  # type: ignore[method-assign]
    router.engine.scheduler.sweep_ms = 60_000  # no sweep comes to the rescue
    router.engine.sweeps = 1  # (a scheduler started again after a failure is not the first)

    async def main() -> None:
        async with router:
            await router.publish("job.run", {"n": 0, "k": "a"})
            await router.drain(10)
        await router.store.close()

    asyncio.run(main())
    assert failures == [1]
    assert handled == [(0, 2)]
