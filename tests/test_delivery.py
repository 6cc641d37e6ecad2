"""Delivery on the memory store: the promises of runtime.md, one test each, and nothing lost as a property."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlock
from interlock.runtime.entry import delivery_entry, pack
from interlock.runtime.event import Event
from interlock.runtime.outcomes import DeliveryError
from interlock.runtime.schema import SchemaError
from interlock.runtime.transform import apply_transform

SHOP = """
event order.created { id: string, amount: float, customer: { id: string, tier: string } }
dead_letter dlq { retain 7d }
retry quick { attempts 3 backoff fixed 5ms }
target billing { mode async, retry quick, dead_letter dlq, order by customer.id, concurrency 4 }
target fraud { mode sync, timeout 100ms, retry quick, dead_letter dlq }
target audit { mode async, dead_letter dlq }
target slim { mode async, dead_letter dlq }
route big { on order.created when amount >= 1000 to fraud, billing }
route every { on order.* to audit }
route light { on order.created to slim with { order: id, tier: customer.tier, source: "shop" } }
unrouted to dead_letter lost
"""


def load(text: str) -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(text)
    return interlock.load(str(folder / "p.route"))


def order(number: int, amount: float = 5000, customer: str = "c1") -> dict[str, Any]:
    return {"id": f"o{number}", "amount": amount, "customer": {"id": customer, "tier": "gold"}}


def wire(router: interlock.Router, failures: dict[tuple[str, str], int] | None = None) -> list[tuple[str, str, int]]:
    """Handlers that record what they received; `failures[(target, id)]` first attempts raise."""
    seen: list[tuple[str, str, int]] = []
    failures = failures or {}
    for target in ("billing", "audit", "slim"):
        async def handle(event: Event, target: str = target) -> None:
            if failures.get((target, event.id), 0) > 0:
                failures[(target, event.id)] -= 1
                raise ConnectionError(f"{target} is down")
            seen.append((target, event.id, event.attempt))
        router.handler(target)(handle)

    @router.handler("fraud")
    def fraud(event: Event) -> dict[str, float]:
        return {"score": 0.02}

    return seen


def test_publish_delivers_replies_and_retries() -> None:
    router = load(SHOP)
    seen = wire(router, {("billing", "o2"): 2})

    async def main() -> interlock.Receipt:
        async with router:
            receipt = await router.publish("order.created", order(1), id="o1")
            await router.publish("order.created", order(2), id="o2")
            await router.drain(5)
        return receipt

    receipt = asyncio.run(main())
    assert receipt.targets == {"fraud", "billing", "audit", "slim"}
    assert receipt.replies == {"fraud": {"score": 0.02}} and not receipt.unrouted
    assert ("billing", "o2", 3) in seen and ("billing", "o1", 1) in seen
    assert sorted(t for t, i, _ in seen if i == "o1") == ["audit", "billing", "slim"]


def test_transforms_shape_what_the_handler_receives() -> None:
    router = load(SHOP)
    received: list[dict[str, Any]] = []
    wire(router)
    router.engine.handlers.pop("slim")

    @router.handler("slim")
    async def slim(event: Event) -> None:
        received.append(event.data)

    async def main() -> None:
        async with router:
            await router.publish("order.created", order(1, amount=5))
            await router.drain(5)

    asyncio.run(main())
    assert received == [{"order": "o1", "tier": "gold", "source": "shop"}]


def test_with_empty_braces_delivers_an_empty_object() -> None:
    """`with { }` builds `{}`, as every transform builds its object and nothing else (it
    delivered the whole event: `{}` was taken for no transform, when stored and when applied)."""
    router = load("dead_letter dlq\ntarget a { mode async, dead_letter dlq }\ntarget s { mode sync }\n"
                  "route blank { on order.created to a with { }, s with { } }\n")
    received: list[tuple[str, dict[str, Any]]] = []

    @router.handler("a")
    async def a(event: Event) -> None:
        received.append(("a", event.data))

    @router.handler("s")
    def s(event: Event) -> None:
        received.append(("s", event.data))

    async def main() -> None:
        async with router:
            await router.publish("order.created", order(1))
            await router.drain(5)

    asyncio.run(main())
    assert sorted(received) == [("a", {}), ("s", {})]


def test_exhausted_retries_go_to_the_dead_letter_with_their_history() -> None:
    router = load(SHOP)
    wire(router, {("billing", "o1"): 10})

    async def main() -> None:
        async with router:
            await router.publish("order.created", order(1), id="o1")
            await router.drain(5)

    asyncio.run(main())
    (dead,) = router.dead_letters("dlq")
    assert dead.target == "billing" and dead.event.id == "o1" and dead.routes == ("big",)
    assert [(a.attempt, a.kind, a.message) for a in dead.attempts] == [
        (1, "ConnectionError", "billing is down"), (2, "ConnectionError", "billing is down"),
        (3, "ConnectionError", "billing is down")]
    assert dead.reason == "all 3 attempts failed"


def test_redrive_delivers_a_dead_letter_again() -> None:
    router = load(SHOP)
    seen = wire(router, {("billing", "o1"): 3})

    async def main() -> int:
        async with router:
            await router.publish("order.created", order(1), id="o1")
            await router.drain(5)
            count = await router.redrive("dlq")
            await router.drain(5)
        return count

    assert asyncio.run(main()) == 1
    assert ("billing", "o1", 1) in seen
    assert router.dead_letters("dlq") == []


def test_unrouted_events_are_kept() -> None:
    router = load(SHOP)
    wire(router)

    async def main() -> interlock.Receipt:
        async with router:
            return await router.publish("payment.failed", {"id": "p1"})

    receipt = asyncio.run(main())
    assert receipt.unrouted and receipt.targets == frozenset()
    (dead,) = router.dead_letters("lost")
    assert dead.event.type == "payment.failed" and dead.target is None and dead.reason == "no route matched"


def test_a_duplicate_id_is_delivered_once() -> None:
    router = load(SHOP)
    seen = wire(router)

    async def main() -> interlock.Receipt:
        async with router:
            await router.publish("order.created", order(1), id="same")
            again = await router.publish("order.created", order(1), id="same")
            await router.drain(5)
        return again

    assert asyncio.run(main()).duplicate
    assert sorted(t for t, i, _ in seen) == ["audit", "billing", "slim"]


def test_schema_violations_are_refused_and_nothing_is_stored() -> None:
    router = load(SHOP)
    wire(router)

    async def main() -> None:
        async with router:
            with pytest.raises(SchemaError, match=r"field `customer\.tier` is required"):
                await router.publish("order.created", {"id": "o1", "amount": 1, "customer": {"id": "c"}})
            with pytest.raises(SchemaError, match="field `amount` must be a float"):
                await router.publish("order.created", {"id": "o1", "amount": "1", "customer": {"id": "c", "tier": "t"}})
            assert await router.store.length("deliveries.audit") == 0

    asyncio.run(main())


def test_a_routed_target_without_handler_is_an_error_at_start() -> None:
    router = load(SHOP)

    async def main() -> None:
        async with router:
            pass

    with pytest.raises(DeliveryError, match="no handler for routed target"):
        asyncio.run(main())


def test_sync_target_timeout_and_failure_reach_the_caller() -> None:
    router = load(SHOP)
    wire(router)
    router.engine.handlers.pop("fraud")

    @router.handler("fraud")
    async def slow(event: Event) -> None:
        await asyncio.sleep(1)

    async def main() -> interlock.Receipt:
        async with router:
            receipt = await router.publish("order.created", order(1))
            await router.drain(5)
        return receipt

    receipt = asyncio.run(main())
    assert receipt.errors["fraud"].startswith("TimeoutError") and "fraud" not in receipt.replies
    assert [d.target for d in router.dead_letters("dlq")] == ["fraud"]


def test_a_handler_that_waits_runs_to_its_end_in_the_publishing_task() -> None:
    """Handlers run inside the caller's task (their first step at once, the rest under the
    deadline): what they wait on, what they catch and what they return all behave as `await`."""
    router = load(SHOP)
    wire(router)
    router.engine.handlers.pop("fraud")
    steps: list[str] = []

    @router.handler("fraud")
    async def careful(event: Event) -> dict[str, Any]:
        steps.append("first")
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            await asyncio.get_running_loop().run_in_executor(None, lambda: 1 / 0)
        except ZeroDivisionError:
            steps.append("caught")
        await asyncio.sleep(0.001)
        return {"score": len(steps)}

    async def main() -> interlock.Receipt:
        async with router:
            receipt = await router.publish("order.created", order(1))
            await router.drain(5)
        return receipt

    assert asyncio.run(main()).replies == {"fraud": {"score": 2}}
    assert steps == ["first", "caught"]


def test_cancelling_a_publish_cancels_its_waiting_sync_handler() -> None:
    router = load(SHOP)
    wire(router)
    router.engine.handlers.pop("fraud")
    seen: list[str] = []

    @router.handler("fraud")
    async def slow(event: Event) -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        async with router:
            publishing = asyncio.create_task(router.publish("order.created", order(1)))
            await asyncio.sleep(0.01)
            publishing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await publishing
            await router.drain(5)

    asyncio.run(main())
    assert seen == ["cancelled"]
    assert router.dead_letters("dlq") == []  # a cancelled publish is not the handler's failure


def test_order_by_holds_a_failing_key_back_and_lets_others_flow() -> None:
    router = load(SHOP)
    calls: list[tuple[str, str, int]] = []
    wire(router)
    router.engine.handlers.pop("billing")
    failing = {"o1": 2}

    @router.handler("billing")
    async def billing(event: Event) -> None:
        calls.append((event.key, event.id, event.attempt))
        if failing.get(event.id, 0) > 0:
            failing[event.id] -= 1
            raise ConnectionError("down")
        await asyncio.sleep(0.001)

    async def main() -> None:
        async with router:
            for number in range(1, 7):
                await router.publish("order.created", order(number, customer="A" if number % 2 else "B"),
                                     id=f"o{number}")
            await router.drain(5)

    asyncio.run(main())
    for key in ("A", "B"):
        ids = [int(i[1:]) for k, i, _ in calls if k == key]
        assert ids == sorted(ids), (key, calls)
    assert [a for k, i, a in calls if i == "o1"] == [1, 2, 3]


def test_publish_sync_and_a_sync_context() -> None:
    router = load(SHOP)
    seen = wire(router)
    with router:
        receipt = router.publish_sync("order.created", order(1))
        router.drain_sync(5)
    assert receipt.replies == {"fraud": {"score": 0.02}}
    assert sorted(t for t, _, _ in seen) == ["audit", "billing", "slim"]


def test_apply_transform() -> None:
    transform = {"a": {"copy": ["x", "y"]}, "b": {"value": [1]}, "c": {"object": {"d": {"copy": ["items", "sku"]}}},
                 "e": {"copy": ["missing"]}}
    assert apply_transform(transform, {"x": {"y": 5}, "items": [{"sku": "s1"}, {"sku": "s2"}]}) == {
        "a": 5, "b": [1], "c": {"d": ["s1", "s2"]}}


# ---- nothing lost, as a property -----------------------------------------------------------

_target = st.fixed_dictionaries({
    "attempts": st.integers(1, 3), "ordered": st.booleans(), "concurrency": st.integers(1, 3),
    "retry_on": st.sampled_from(["", "retry_on [ConnectionError, TimeoutError]"]),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_target, min_size=1, max_size=3), st.lists(st.tuples(st.integers(0, 2), st.integers(0, 99)),
                                                                 min_size=1, max_size=25),
       st.integers(0, 2**32 - 1))
def test_every_delivery_ends_acknowledged_or_dead_lettered(targets: list[dict[str, Any]],
                                                           stream: list[tuple[int, int]], seed: int) -> None:
    lines = ["event e.x { k: int, n: int }", "dead_letter dlq"]
    for number, t in enumerate(targets):
        order_by = ", order by k" if t["ordered"] else ""
        lines.append(f"target t{number} {{ mode async, dead_letter dlq, timeout 30ms, concurrency {t['concurrency']}"
                     f"{order_by}, retry {{ attempts {t['attempts']} backoff fixed 1ms {t['retry_on']} }} }}")
        lines.append(f"route r{number} {{ on e.x when n >= {number * 10} to t{number} }}")
    router = load("\n".join(lines) + "\n")
    rng = random.Random(seed)
    acked: set[tuple[str, str]] = set()
    starts: dict[tuple[str, int], list[int]] = {}

    for number in range(len(targets)):
        async def handle(event: Event, target: str = f"t{number}") -> None:
            starts.setdefault((target, event.data["k"]), []).append(int(event.id[1:]))
            fate = rng.random()
            if fate < 0.2:
                raise ConnectionError("flaky")
            if fate < 0.3:
                raise ValueError("not retryable when retry_on is set")
            if fate < 0.35:
                await asyncio.sleep(0.06)  # longer than the 30 ms timeout
            acked.add((target, event.id))
        router.handler(f"t{number}")(handle)

    expected: set[tuple[str, str]] = set()

    async def main() -> None:
        async with router:
            for n, (k, value) in enumerate(stream):
                receipt = await router.publish("e.x", {"k": k, "n": value}, id=f"e{n}")
                expected.update((t, f"e{n}") for t in receipt.targets)
            await router.drain(30)

    asyncio.run(main())
    dead = {(d.target, d.event.id) for d in router.dead_letters("dlq")}
    assert expected <= acked | dead, expected - acked - dead
    # per key, an ordered target started deliveries in publish order (a retry repeats, never reorders)
    for number, t in enumerate(targets):
        if t["ordered"]:
            for (target, _key), published in starts.items():
                if target == f"t{number}":
                    assert published == sorted(published), (target, published)


def test_retention_trims_what_was_delivered_and_old_dead_letters() -> None:
    """Delivered entries kept `retain_delivered_ms` (for replay), then trimmed; dead letters
    for their `retain`. (Without retention, the memory store never keeps delivered entries:
    its fast path hands first deliveries to the handlers without a stream entry.)"""
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(SHOP.replace("dead_letter dlq { retain 7d }", "dead_letter dlq { retain 50ms }"))
    router = interlock.load(str(folder / "p.route"), retain_delivered_ms=50)
    wire(router, {("billing", "o1"): 10})

    async def main() -> tuple[int, int, int]:
        async with router:
            for number in range(1, 6):
                await router.publish("order.created", order(number), id=f"o{number}")
            await router.drain(5)
            before = await router.store.length("deliveries.audit")
            await asyncio.sleep(0.06)
            await router.engine.housekeeping()
            return before, await router.store.length("deliveries.audit"), await router.store.length("dead.dlq")

    before, after, dead = asyncio.run(main())
    assert before == 5 and after == 0 and dead == 0


def test_the_deadline_counts_a_handler_s_first_step_and_its_context_is_its_own() -> None:
    """A handler that blocks 150 ms before it first waits, then waits 60 ms, has overrun a
    100 ms timeout; context variables it sets do not leak into the publisher's context."""
    import contextvars
    import time as clock

    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="publisher's")
    router = load(SHOP)
    wire(router)
    router.engine.handlers.pop("fraud")

    @router.handler("fraud")
    async def slow_start(event: Event) -> None:
        seen.set("handler's")
        clock.sleep(0.15)  # blocking work before the first wait
        await asyncio.sleep(0.06)

    async def main() -> tuple[interlock.Receipt, str]:
        async with router:
            receipt = await router.publish("order.created", order(1))
            after = seen.get()
            await router.drain(5)
        return receipt, after

    receipt, after = asyncio.run(main())
    assert receipt.errors["fraud"].startswith("TimeoutError")
    assert after == "publisher's"


def test_deliveries_under_way_when_the_router_stops_are_delivered_after_a_restart() -> None:
    router = load(SHOP)
    seen = wire(router)
    router.engine.handlers.pop("audit")
    started = asyncio.Event()
    stuck = True

    @router.handler("audit")
    async def audit(event: Event) -> None:
        if stuck:
            started.set()
            await asyncio.sleep(10)  # still under way when the router stops
        seen.append(("audit", event.id, event.attempt))

    async def first() -> None:
        async with router:
            for n in range(5):
                await router.publish("order.created", order(n, amount=10), id=f"o{n}")
            await started.wait()

    async def second() -> None:
        async with router:
            await router.drain(5)

    asyncio.run(first())
    stuck = False
    asyncio.run(second())
    assert sorted(i for t, i, _ in seen if t == "audit") == [f"o{n}" for n in range(5)]


def test_a_delivery_dead_lettered_again_is_one_dead_letter() -> None:
    """A delivery delivered again with the same attempt (claimed after a crash, a step sent
    again) and failing again is not a second entry in its dead letter."""
    router = load(SHOP)
    wire(router)
    router.engine.handlers.pop("audit")

    @router.handler("audit")
    async def audit(event: Event) -> None:
        raise ValueError("audit is broken")

    async def main() -> None:
        async with router:
            await router.publish("order.created", order(1, amount=10), id="o1")
            await router.drain(5)
            # the same delivery, again, as the store would hand it out (its first attempt)
            ev = (await router.engine.dead_letters("dlq"))[0].event
            again = delivery_entry(ev, None, "audit", ["every"], None, None, router.store.now_ms())
            await router.store.append("deliveries.audit", pack(again))
            router.engine.outstanding.started()
            await router.drain(5)

    asyncio.run(main())
    assert [d.target for d in router.dead_letters("dlq")] == ["audit"]


def test_sync_handlers_each_get_their_own_copy_of_the_data() -> None:
    """From a review: sync targets were handed the publisher's own dict, so a second sync
    target (and the publisher, and a retry) saw what the first one changed."""
    router = load("""
target s1 { mode sync, retry { attempts 2 backoff fixed 1ms } }
target s2 { mode sync }
route r { on x.* to s1, s2 }
""")
    attempts: list[dict[str, Any]] = []

    @router.handler("s1")
    def s1(event: interlock.Event) -> None:
        attempts.append(dict(event.data))
        event.data["touched"] = True
        if len(attempts) == 1:
            raise RuntimeError("once")

    @router.handler("s2")
    def s2(event: interlock.Event) -> dict[str, Any]:
        return dict(event.data)

    async def main() -> tuple[dict[str, Any], Any]:
        async with router:
            data = {"n": 1}
            receipt = await router.publish("x.y", data)
            return data, receipt.replies["s2"]

    data, seen_by_s2 = asyncio.run(main())
    assert data == {"n": 1} and seen_by_s2 == {"n": 1}
    assert attempts == [{"n": 1}, {"n": 1}]  # the retry got the data as published
