"""What delivery tells its user when something goes wrong: a handler's own timeout, a dead
letter's name mistyped, a drain that times out, a sync target's failure; and a `def`
handler's timeout counted from when it starts."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import interlock
from interlock.runtime.outcomes import DeliveryError

PROJECT = """
event job { n: int }
dead_letter failed
target work { mode async, timeout 200ms, concurrency 1, retry { attempts 1 }, dead_letter failed }
target quote { mode sync, timeout 200ms, retry { attempts 2, backoff fixed 5ms }, dead_letter failed }
route jobs { on job when n >= 0 to work }
route quotes { on job when n < 0 to quote }
"""


def load() -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(PROJECT)
    return interlock.load(str(folder / "p.route"))


def run(router: interlock.Router, events: list[dict[str, Any]], drain: float = 10) -> None:
    async def main() -> None:
        async with router:
            for n, data in enumerate(events):
                await router.publish("job", data, id=f"j{n}")
            await router.drain(drain)

    asyncio.run(main())


def test_a_handlers_own_timeout_error_keeps_its_message() -> None:
    router = load()

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        if event.data["n"] == 0:
            raise TimeoutError("eu slow")
        await asyncio.sleep(1)  # past the target's 200 ms

    router.handler("quote")(lambda event: None)
    run(router, [{"n": 0}, {"n": 1}])
    letters = {d.event.id: d.attempts[0] for d in router.dead_letters("failed")}
    assert (letters["j0"].kind, letters["j0"].message) == ("TimeoutError", "eu slow")
    assert letters["j1"].kind == "TimeoutError"
    assert letters["j1"].message == "the attempt took longer than the target's timeout (0.2 s)"


def test_a_dead_letter_name_that_does_not_exist_is_an_error_with_a_suggestion() -> None:
    router = load()
    with pytest.raises(DeliveryError, match="no dead letter `faild` in this router; did you mean `failed`"):
        router.dead_letters("faild")

    async def redrive() -> int:
        return await router.redrive("faild")

    with pytest.raises(DeliveryError, match="did you mean `failed`"):
        asyncio.run(redrive())
    assert router.dead_letters("unrouted") == []  # the unrouted dead letter is one too


def test_a_drain_that_times_out_says_what_is_outstanding() -> None:
    router = load()
    router.handler("quote")(lambda event: None)

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        await asyncio.sleep(0.15)

    async def main() -> None:
        async with router:
            for n in range(5):
                await router.publish("job", {"n": n})
            with pytest.raises(TimeoutError, match=r"drain: not done after 0.1 s: `work`: .*read and not yet"):
                await router.drain(0.1)
            await router.drain(10)

    asyncio.run(main())


def test_a_failed_sync_target_is_in_the_receipt_as_kind_and_message() -> None:
    router = load()
    router.handler("work")(lambda event: None)

    @router.handler("quote")
    def quote(event: interlock.Event) -> None:
        raise LookupError("no price for this one")

    async def main() -> interlock.Receipt:
        async with router:
            return await router.publish("job", {"n": -1})

    receipt = asyncio.run(main())
    failure = receipt.failures["quote"]
    assert (failure.attempt, failure.kind, failure.message) == (2, "LookupError", "no price for this one")
    assert receipt.errors["quote"].startswith("LookupError: no price for this one")


def test_a_def_handlers_timeout_starts_when_it_starts_not_while_it_waits_for_a_thread() -> None:
    # `work` has one thread: the first call hangs past its timeout and keeps the thread for
    # 600 ms; the second waits for the thread that long, then takes 10 ms: it is delivered.
    router = load()
    router.handler("quote")(lambda event: None)
    delivered: list[tuple[str, int]] = []

    @router.handler("work")
    def work(event: interlock.Event) -> None:
        time.sleep(0.6 if event.data["n"] == 0 else 0.01)
        delivered.append((event.id, event.attempt))

    run(router, [{"n": 0}, {"n": 1}])
    assert ("j1", 1) in delivered
    assert [d.event.id for d in router.dead_letters("failed")] == ["j0"]


# ---- found by review ---------------------------------------------------------------------------


def test_redriving_a_sync_targets_dead_letter_calls_it_again() -> None:
    router = load()
    router.handler("work")(lambda event: None)
    calls: list[int] = []

    @router.handler("quote")
    def quote(event: interlock.Event) -> None:
        calls.append(event.attempt)
        if len(calls) <= 2:
            raise LookupError("not yet")

    async def main() -> int:
        async with router:
            await router.publish("job", {"n": -1}, id="s1")  # two attempts fail: dead-lettered
            return await router.redrive("failed")

    assert asyncio.run(main()) == 1
    assert calls == [1, 2, 1]  # called again (it used to go to a stream nothing reads)
    assert router.dead_letters("failed") == []


def test_a_drain_that_times_out_with_the_store_hanging_still_returns_promptly() -> None:
    class Hanging(interlock.MemoryStore):
        hang = False

        async def pending(self, *args: Any, **kwargs: Any) -> Any:
            if self.hang:
                await asyncio.sleep(3600)
            return await super().pending(*args, **kwargs)

        async def stream_stats(self, *args: Any, **kwargs: Any) -> Any:
            if self.hang:
                await asyncio.sleep(3600)
            return await super().stream_stats(*args, **kwargs)

    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(PROJECT)
    store = Hanging()
    router = interlock.load(str(folder / "p.route"), store=store)
    router.handler("quote")(lambda event: None)

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        await asyncio.sleep(1)

    async def main() -> float:
        async with router:
            await router.publish("job", {"n": 1})
            store.hang = True
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="the store does not answer within"):
                await router.drain(0.2)
            store.hang = False
            return time.monotonic() - started

    assert asyncio.run(main()) < 5


def test_sync_def_calls_beyond_the_threads_wait_their_turn_without_blame() -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text("""
event job { n: int }
target quote { mode sync, timeout 1s, concurrency 1 }
route quotes { on job to quote }
""")
    router = interlock.load(str(folder / "p.route"))
    router.handler("quote")(lambda event: time.sleep(0.3))

    async def main() -> list[interlock.Receipt]:
        return list(await asyncio.gather(*(router.publish("job", {"n": n}) for n in range(10))))

    receipts = asyncio.run(main())
    assert [r.errors for r in receipts] == [{}] * 10  # 2 threads, 3 s of work, none past its 1 s


def test_a_handler_raising_a_base_exception_of_its_own_fails_its_delivery() -> None:
    class Bail(BaseException):
        pass

    router = load()
    router.handler("quote")(lambda event: None)

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        raise Bail("out")

    run(router, [{"n": 1}])
    [letter] = router.dead_letters("failed")
    assert letter.attempts[0].kind == "Bail"


def test_two_redrives_at_once_put_each_entry_back_once(redis_url: str) -> None:
    import redis

    url = f"{redis_url.rsplit('/', 1)[0]}/6"
    redis.Redis.from_url(url).flushdb()
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(PROJECT)
    router = interlock.load(str(folder / "p.route"), store=url)
    router.handler("quote")(lambda event: None)
    calls: list[str] = []
    failing = True

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        calls.append(event.id)
        if failing:
            raise LookupError("down")

    async def main() -> list[int]:
        nonlocal failing
        async with router:
            for n in range(100):
                await router.publish("job", {"n": n}, id=f"r{n}")
            await router.drain(20)
            failing = False
            calls.clear()
            counts = await asyncio.gather(router.redrive("failed"), router.redrive("failed"))
            await router.drain(20)
            return list(counts)

    counts = asyncio.run(main())
    assert sorted(calls) == sorted(f"r{n}" for n in range(100))  # each once (it used to be twice)
    assert sum(counts) == 100
    assert router.dead_letters("failed") == []
