"""A service that embeds the shop's router: run it with `.venv/bin/python examples/service.py`.

It loads the project (compiled on the fly; a `router.json` from `interlock compile` works
the same), registers a handler per target, publishes a few orders, waits for delivery,
and prints what happened, dead letters included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import interlock

router = interlock.load(str(Path(__file__).parent / "shop"))
delivered: list[str] = []


@router.handler("fraud_check")  # a sync target: called inside publish, its reply returned
def fraud_check(event: interlock.Event) -> dict[str, float]:
    return {"score": 0.02 if event.data["amount"] < 10_000 else 0.7}


@router.handler("billing")  # an async target: fails once for o-2, retried per its policy
async def billing(event: interlock.Event) -> None:
    if event.id == "o-2" and event.attempt == 1:
        raise ConnectionError("ledger database unavailable")
    delivered.append(f"billing {event.id} (attempt {event.attempt})")


for name in sorted(set(router.targets) - {"fraud_check", "billing"}):
    async def record(event: interlock.Event, name: str = name) -> None:
        delivered.append(f"{name} {event.id}")
    router.handler(name)(record)


def order(number: int, amount: float, tier: str, currency: str = "EUR") -> dict[str, object]:
    return {"id": f"o-{number}", "amount": amount, "currency": currency, "channel": "web",
            "customer": {"id": f"c-{number}", "tier": tier, "email": f"c{number}@example.com", "first_order": False},
            "items": [{"sku": "EU-4411", "quantity": 1, "unit_price": amount, "digital": False}], "tags": [],
            "placed_at": "2026-11-26T09:00:00Z"}


async def main() -> None:
    async with router:
        first = await router.publish("order.created", order(1, 5200.0, "gold"), id="o-1")
        print("o-1 reached:", ", ".join(sorted(first.targets)))
        print("fraud_check replied:", first.replies.get("fraud_check"))
        await router.publish("order.created", order(2, 80.0, "silver", "USD"), id="o-2")
        unrouted = await router.publish("inventory.recount", {"sku": "EU-4411"})
        print("inventory.recount unrouted:", unrouted.unrouted)
        await router.drain()
    for line in sorted(delivered):
        print("delivered:", line)
    for name in router.artifact["dead_letters"]:
        for dead in router.dead_letters(name):
            print(f"dead letter {name}: {dead.event.type} {dead.event.id} ({dead.reason})")


if __name__ == "__main__":
    asyncio.run(main())
