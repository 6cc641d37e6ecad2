"""The memory store's fast path (runtime/lanes.py): first deliveries go to the pools as
Python objects, with no stream entry; the promises stay: a copy of the data per delivery,
retries through the store, and what the pools hold at stop delivered after a restart, each
key in its order."""

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
            await router.drain(5)
            # the retries went through the store; the first attempts never did
            return await router.store.length("deliveries.audit"), await router.store.length("deliveries.ledger")

    audit_entries, ledger_entries = asyncio.run(main())
    assert audit_entries == 0 and ledger_entries == 10  # the ten retries
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


def test_a_publisher_faster_than_the_handlers_lets_them_run() -> None:
    """A publish on the fast path never waits on a store: when a pool holds more than its
    read-ahead, the publish lets the handlers run, so what waits in memory stays bounded."""
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
