"""The memory store's fast path (runtime/lanes.py): first deliveries of targets without
`order by` go to the pools as Python objects, with no stream entry, while the pools have
room; the promises stay: a copy of the data per delivery, retries through the store, what
the pools hold at stop delivered once after a restart, each key in its order."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import interlock
from interlock import Event

PROJECT = """
dead_letter dlq
target ledger { mode async, order by account, concurrency 4, dead_letter dlq,
                retry { attempts 3 backoff fixed 5ms } }
target audit { mode async, concurrency 2, dead_letter dlq }
route money { on money.* to ledger, audit }
"""


def _router(**options: Any) -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(PROJECT)
    return interlock.load(str(folder / "p.route"), **options)


def test_first_deliveries_leave_no_stream_entry_and_retries_still_come() -> None:
    router = _router()
    seen: list[tuple[str, int, int]] = []
    failed: set[int] = set()

    @router.handler("ledger")
    async def ledger(event: Event) -> None:
        if event.data["n"] % 3 == 0 and event.data["n"] not in failed:
            failed.add(event.data["n"])
            raise RuntimeError("once")
        seen.append(("ledger", event.data["n"], event.attempt))

    @router.handler("audit")
    async def audit(event: Event) -> None:
        seen.append(("audit", event.data["n"], event.attempt))

    async def main() -> tuple[int, int]:
        async with router:
            for n in range(30):
                await router.publish("money.moved", {"n": n, "account": f"a{n % 4}"})
                await asyncio.sleep(0.001)  # (the handlers keep up: the pools have room)
            await router.drain(5)
            return await router.store.length("deliveries.audit"), await router.store.length("deliveries.ledger")

    audit_entries, ledger_entries = asyncio.run(main())
    # `audit` took the fast path: no entry; `ledger` (`order by`) the store: 30 first attempts and 10 retries
    assert audit_entries == 0 and ledger_entries == 40
    assert sorted(n for t, n, _ in seen if t == "audit") == list(range(30))
    assert sorted(n for t, n, _ in seen if t == "ledger") == list(range(30))
    assert {n for t, n, a in seen if t == "ledger" and a == 2} == set(range(0, 30, 3))


def test_each_delivery_has_its_own_copy_of_the_data() -> None:
    router = _router()
    got: dict[str, dict[str, Any]] = {}

    @router.handler("ledger")
    async def ledger(event: Event) -> None:
        event.data["touched"] = "ledger"  # a handler changing what it got
        got["ledger"] = event.data

    @router.handler("audit")
    async def audit(event: Event) -> None:
        await asyncio.sleep(0.01)
        got["audit"] = event.data

    async def main() -> None:
        async with router:
            data = {"n": 1, "account": "a1", "tags": ["x"]}
            await router.publish("money.moved", data)
            data["tags"].append("changed after publish")
            await router.drain(5)

    asyncio.run(main())
    assert got["audit"] == {"n": 1, "account": "a1", "tags": ["x"]}
    assert got["ledger"]["tags"] == ["x"]


def test_what_the_pools_hold_at_stop_is_delivered_after_a_restart_each_key_in_order() -> None:
    """A slow handler: at stop, one delivery per key is running and the rest wait, held
    behind their busy keys; after a restart every one is delivered, each key in publish
    order (a running one may be delivered twice: at least once)."""
    router = _router()
    order: list[tuple[str, int]] = []
    slow = True

    @router.handler("ledger")
    async def ledger(event: Event) -> None:
        if slow:
            await asyncio.sleep(10)
        order.append((event.data["account"], event.data["n"]))

    @router.handler("audit")
    async def audit(event: Event) -> None:
        return None

    async def first() -> None:
        async with router:
            for n in range(20):
                await router.publish("money.moved", {"n": n, "account": f"a{n % 3}"})
            await asyncio.sleep(0.05)

    async def second() -> None:
        async with router:
            await router.drain(5)

    asyncio.run(first())
    slow = False
    asyncio.run(second())
    for account in ("a0", "a1", "a2"):
        handled = [n for a, n in order if a == account]
        assert sorted(set(handled)) == [n for n in range(20) if f"a{n % 3}" == account]
        firsts = list(dict.fromkeys(handled))  # (a repeat of the one running at stop aside)
        assert firsts == sorted(firsts), (account, handled)


def test_a_publisher_faster_than_the_handlers_overflows_into_the_store() -> None:
    """A pool takes fast-path deliveries only while it has room in its read-ahead; the rest
    wait in the store (lighter), read as room frees: what waits as Python objects is bounded."""
    router = _router()
    router.handler("ledger")(lambda event: None)

    @router.handler("audit")
    async def audit(event: Event) -> None:
        return None

    async def main() -> int:
        most = 0
        async with router:
            pool = router.engine.pools["audit"]
            for n in range(500):
                await router.publish("money.moved", {"n": n, "account": "a"})
                most = max(most, len(pool.queue))
            await router.drain(5)
            return most - pool.capacity

    assert asyncio.run(main()) <= 1


STOP_PROJECT = """
dead_letter dlq
target a { mode async, concurrency 1, dead_letter dlq }
target b { mode async, concurrency 1, dead_letter dlq }
route r { on x.* to a, b }
"""


def test_deliveries_that_finish_while_delivery_stops_are_not_delivered_again() -> None:
    """From a review: at stop, a pool stopped after another (a handler that awaits when it is
    cancelled) went on delivering what had been taken to put back: those were delivered
    twice, and counted done twice (a later drain returned early)."""
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(STOP_PROJECT)
    router = interlock.load(str(folder / "p.route"))
    seen: dict[str, int] = {}
    slow = True

    @router.handler("a")
    async def a(event: Event) -> None:
        if not slow:
            return
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # cleanup when cancelled
            raise

    @router.handler("b")
    async def b(event: Event) -> None:
        await asyncio.sleep(0.001)
        seen[event.id] = seen.get(event.id, 0) + 1

    async def first() -> None:
        async with router:
            for n in range(20):
                await router.publish("x.y", {"n": n}, id=f"e{n}")
            await asyncio.sleep(0)

    async def second() -> tuple[int, int]:
        async with router:
            await router.drain(5)
            handled = sum(seen.values())
            await asyncio.sleep(0.3)
            return handled, sum(seen.values())

    asyncio.run(first())
    slow = False
    at_drain, later = asyncio.run(second())
    assert at_drain == later == 20 and set(seen.values()) == {1}, seen


def test_an_ordered_target_s_unread_deliveries_are_not_overtaken_after_a_start() -> None:
    """From a review: deliveries published before `async with` (unread in the store) were
    overtaken by the fast path's, published after the start, of the same key."""
    router = _router()
    order: list[int] = []
    router.handler("audit")(lambda event: None)

    @router.handler("ledger")
    async def ledger(event: Event) -> None:
        order.append(event.data["n"])

    async def main() -> None:
        for n in range(5):
            await router.publish("money.moved", {"n": n, "account": "a"})
        async with router:
            for n in range(5, 10):
                await router.publish("money.moved", {"n": n, "account": "a"})
            await router.drain(5)

    asyncio.run(main())
    assert order == list(range(10))

