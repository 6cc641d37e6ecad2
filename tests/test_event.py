"""`Event` and CloudEvents both ways; data against schemas at publish."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.runtime.event import Event, EventError
from interlock.runtime.schema import SchemaError, validate


def test_an_event_gets_an_id_and_a_time() -> None:
    event = Event("order.created", {"id": "o1"})
    assert len(event.id) == 32 and event.time.endswith("Z") and event.attempt == 1
    assert Event("order.created", {}).id != event.id


def test_cloudevents_both_ways() -> None:
    event = Event("order.created", {"amount": 5}, id="e1", source="shop")
    cloud = event.to_cloudevent()
    assert cloud == {"specversion": "1.0", "id": "e1", "source": "shop", "type": "order.created",
                     "time": event.time, "datacontenttype": "application/json", "data": {"amount": 5}}
    assert Event.from_cloudevent(cloud) == event


@pytest.mark.parametrize(("cloud", "message"), [
    ([], "a CloudEvent is a JSON object"),
    ({"id": "1", "source": "s", "type": "a.b"}, "`specversion` must be \"1.0\""),
    ({"specversion": "1.0", "source": "s", "type": "a.b"}, "`id` must be a non-empty string"),
    ({"specversion": "1.0", "id": "1", "type": "a.b"}, "`source` must be a non-empty string"),
    ({"specversion": "1.0", "id": "1", "source": "s", "type": "not a type"}, "dotted name"),
    ({"specversion": "1.0", "id": "1", "source": "s", "type": "a.b", "data": [1]}, "must be a JSON object"),
    ({"specversion": "1.0", "id": "1", "source": "s", "type": "a.b", "datacontenttype": "text/xml"},
     "must be JSON"),
])
def test_bad_cloudevents_are_refused_by_name(cloud: object, message: str) -> None:
    with pytest.raises(EventError, match=message):
        Event.from_cloudevent(cloud)


SCHEMA = {"type": "object", "fields": {
    "id": {"type": "string", "optional": False},
    "amount": {"type": "float", "optional": False},
    "count": {"type": "int", "optional": True},
    "at": {"type": "timestamp", "optional": True},
    "customer": {"type": "object", "optional": False, "fields": {"tier": {"type": "string", "optional": False}}},
    "items": {"type": "list", "optional": True, "item": {"type": "object", "fields": {
        "sku": {"type": "string", "optional": False}}}},
}}


def test_valid_data() -> None:
    validate({"id": "o1", "amount": 5, "count": 2.0, "at": "2026-11-26T10:00:00Z", "customer": {"tier": "gold"},
              "items": [{"sku": "a"}]}, SCHEMA)


@pytest.mark.parametrize(("data", "message"), [
    ({"amount": 5, "customer": {"tier": "g"}}, "field `id` is required"),
    ({"id": 5, "amount": 5, "customer": {"tier": "g"}}, "field `id` must be a string, not number 5"),
    ({"id": "o", "amount": "5", "customer": {"tier": "g"}}, "field `amount` must be a float"),
    ({"id": "o", "amount": True, "customer": {"tier": "g"}}, "field `amount` must be a float, not bool"),
    ({"id": "o", "amount": 5, "count": 1.5, "customer": {"tier": "g"}}, "field `count` must be an int"),
    ({"id": "o", "amount": 5, "at": "yesterday", "customer": {"tier": "g"}}, "ISO 8601"),
    ({"id": "o", "amount": 5, "customer": {}}, "field `customer.tier` is required"),
    ({"id": "o", "amount": 5, "customer": {"tier": "g", "vip": True}}, "field `customer.vip` is not in the schema"),
    ({"id": "o", "amount": 5, "customer": {"tier": "g"}, "items": [{"sku": 1}]}, r"field `items\[0\].sku`"),
    ({"id": "o", "amount": 5, "customer": {"tier": "g"}, "extra": 1}, "field `extra` is not in the schema"),
])
def test_invalid_data_names_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        validate(data, SCHEMA)


def _router() -> object:
    import tempfile
    from pathlib import Path

    import interlock

    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text("target t { mode async, on_exhausted drop }\nroute r { on e.x to t }\n")
    return interlock.load(str(folder / "p.route"))


def _nested(depth: int) -> dict[str, object]:
    data: dict[str, object] = {}
    inner = data
    for _ in range(depth):
        inner["x"] = {}
        inner = inner["x"]  # type: ignore[assignment]
    return data


@pytest.mark.parametrize(("data", "message"), [
    ({"n": 2**70}, "field `n` is an integer beyond 64 bits"),
    ({"a": [1, {"m": -2**64}]}, "field `a[1].m` is an integer beyond 64 bits"),
    (_nested(1200), "is nested deeper than 250 levels"),
])
def test_data_that_json_parsers_do_not_read_back_exactly_is_refused_at_publish(
        data: dict[str, object], message: str) -> None:
    """Integers beyond 64 bits (read back as floats) and nesting past 250 levels: an EventError
    naming the field, never a RecursionError or a TypeError, and nothing stored."""
    import asyncio

    router: Any = _router()
    router.handler("t")(lambda event: None)

    async def main() -> None:
        async with router:
            with pytest.raises(EventError, match=message.replace("[", r"\[").replace("]", r"\]")):
                await router.publish("e.x", data)
            assert await router.store.length("deliveries.t") == 0

    asyncio.run(main())


def test_data_within_json_s_exact_range_comes_back_as_it_was_published() -> None:
    import asyncio

    router: Any = _router()
    got: list[dict[str, object]] = []
    router.handler("t")(lambda event: got.append(event.data))
    sent = {"big": 2**64 - 1, "small": -2**63, "deep": _nested(200), "text": "é\u0000", "float": 0.1}

    async def main() -> None:
        async with router:
            await router.publish("e.x", sent)
            await router.drain(5)

    asyncio.run(main())
    assert got == [sent]


def _deep(depth: int, kind: str = "list") -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"x": value}
    return value


def test_deep_data_is_matched_explained_checked_and_transformed_without_a_recursion_error() -> None:
    """What runs on data no publish checked (match, explain, a schema check, a transform, the
    reference interpreter) takes data nested 100,000 deep."""
    import tempfile
    from pathlib import Path

    import interlock
    from interlock.compiler.reference import route
    from interlock.dsl import load_project
    from interlock.runtime.transform import apply_transform

    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(
        "event e.x { a: string, b: list<string>?, c: { d: int }? }\n"
        "target t { mode async, on_exhausted drop }\n"
        "route r { on e.x when a == \"x\" or b contains \"y\" or c.d > 1 to t with { got: a } }\n")
    router = interlock.load(str(folder / "p.route"))
    project = load_project([str(folder / "p.route")])
    for kind in ("list", "dict"):
        deep = {"a": _deep(100_000, kind), "b": _deep(100_000, kind), "c": _deep(100_000, kind)}
        assert router.match("e.x", deep) == frozenset()
        assert [e.matched for e in router.explain("e.x", deep)] == [False]
        assert route(list(project.routes.values()), [], "e.x", deep) == set()
        with pytest.raises(SchemaError, match=r"field `a` must be a string, not (list|object) "):
            validate(deep, router.artifact["events"]["e.x"])
        assert apply_transform({"got": {"copy": ["a"]}}, deep) == {"got": deep["a"]}
