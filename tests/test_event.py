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
    (_nested(1200), "is nested deeper than 64 levels"),
    (_nested(64), "field `" + ".".join(["x"] * 64) + "` is nested deeper than 64 levels"),  # (its 65th level)
])
def test_data_that_json_parsers_do_not_read_back_exactly_is_refused_at_publish(
        data: dict[str, object], message: str) -> None:
    """Integers beyond 64 bits (read back as floats) and nesting past 64 levels: an EventError
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
    # (64 levels: the data, `deep`, and 62 more)
    sent = {"big": 2**64 - 1, "small": -2**63, "deep": _nested(62), "text": "é\u0000", "float": 0.1}

    async def main() -> None:
        async with router:
            await router.publish("e.x", sent)
            await router.drain(5)

    asyncio.run(main())
    assert got == [sent]


# ---- what a publish accepts (runtime/event_data.py): JSON values alone, within bounds ----------


def _sync_and_async(store: object = None) -> tuple[Any, list[dict[str, object]]]:
    """A router with a sync target `s` and an async target `t` on every event, and what their
    handlers got."""
    import tempfile
    from pathlib import Path

    import interlock

    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text("target t { mode async, on_exhausted drop }\ntarget s { mode sync }\n"
                                    "route r { on e.x to t, s }\n")
    router: Any = interlock.load(str(folder / "p.route"), store=store or "memory://")
    got: list[dict[str, object]] = []
    router.handler("t")(lambda event: got.append(event.data))
    router.handler("s")(lambda event: got.append(event.data))
    return router, got


def _refused(router: Any, got: list[dict[str, object]], data: Any, message: str) -> EventError:
    """Publish `data`: refused with an EventError whose message holds `message`, before a
    handler is called or anything is stored."""
    import asyncio

    async def main() -> EventError:
        async with router:
            with pytest.raises(EventError) as refused:
                await (router.publish(data) if isinstance(data, Event) else router.publish("e.x", data))
            assert message in str(refused.value)
            assert await router.store.length("deliveries.t") == 0
            assert await router.store.length("dead.unrouted") == 0
        return refused.value

    error = asyncio.run(main())
    assert got == []
    with pytest.raises(EventError):
        router.validate(data) if isinstance(data, Event) else router.validate("e.x", data)
    return error


@pytest.mark.parametrize(("data", "message"), [
    ({1: "a", "1": "b"}, "the event data has a key of type int, 1: the field names of event data are strings"),
    ({"a": {"b": [{"c": 1}, {2.5: 1}]}}, "field `a.b[1]` has a key of type float, 2.5"),
    ({"a": [{None: 1}]}, "field `a[0]` has a key of type NoneType, None"),
    ({"a": {(1, 2): 1}}, "field `a` has a key of type tuple, (1, 2)"),
])
def test_keys_that_are_not_strings_are_refused_naming_the_place(data: dict[Any, object], message: str) -> None:
    """A key that is not a string, at any depth (from a review: JSON made `{1: "a", "1": "b"}`
    `{"1": "b"}` on its way to async handlers, while routing saw the key 1)."""
    router, got = _sync_and_async()
    _refused(router, got, data, message)


def _values_of_other_types() -> list[tuple[object, str]]:
    import enum
    import uuid

    class Colour(enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    return [
        ((1, 2), "field `a` is of type tuple (send a list)"),
        ([Colour.RED], "field `a[0]` is of type Colour, an enum (send its `.value`)"),
        (Level.HIGH, "field `a` is of type Level, an enum"),
        (uuid.UUID(int=1), "field `a` is of type UUID, which JSON cannot carry"),
        ({"b": Name("x")}, "field `a.b` is of type Name, a subclass of str (send a plain str)"),
        (b"x", "field `a` is of type bytes"),
        ({"b": [1, float("nan")]}, "field `a.b[1]` is nan, which JSON cannot carry"),
    ]


@pytest.mark.parametrize(("value", "message"), _values_of_other_types())
def test_values_json_would_carry_as_something_else_are_refused(value: object, message: str) -> None:
    """Routing sees the value as it is, a handler what JSON made of it: a tuple that routes as
    no list reaches handlers as a list, an enum or a UUID as a string. Refused, naming the place."""
    router, got = _sync_and_async()
    _refused(router, got, {"a": value, "ok": 1}, message)


def test_dicts_of_other_kinds_are_dicts() -> None:
    """An OrderedDict or a defaultdict routes and travels as the dict it is."""
    import asyncio
    import collections

    router, got = _sync_and_async()
    data = collections.OrderedDict(a=collections.defaultdict(list, b=[1]))

    async def main() -> None:
        async with router:
            await router.publish("e.x", data)
            await router.drain(5)

    asyncio.run(main())
    assert got == [{"a": {"b": [1]}}] * 2


def _deep(depth: int, kind: str = "list") -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"x": value}
    return value


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_data_nested_past_the_limit_is_refused_never_a_recursion_error(depth: int, kind: str) -> None:
    """Nesting past 64 levels: an EventError naming the field at the 65th, whatever the
    depth (10,000 and 100,000 levels too), before a handler is called or anything is stored."""
    router, got = _sync_and_async()
    error = _refused(router, got, {"ok": 1, "d": _deep(depth, kind)}, "is nested deeper than 64 levels")
    step = "[0]" if kind == "list" else ".x"
    assert str(error).startswith("field `d" + step * 40)  # (shown to 200 characters)


def test_the_nesting_limit_is_64_levels() -> None:
    from interlock.runtime.event_data import MAX_DEPTH

    router, got = _sync_and_async()
    assert MAX_DEPTH == 64
    router.validate("e.x", {"d": _deep(63)})  # the data, and 63 lists: 64 levels
    router.validate("e.x", {"d": _deep(63, "dict")})
    _refused(router, got, {"d": _deep(64)}, "field `d" + "[0]" * 63 + "` is nested deeper than 64 levels")


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


def test_an_event_larger_than_its_store_takes_is_refused_before_anything_is_stored_or_called() -> None:
    """The size of an event is its data as JSON (UTF-8) with its attributes' text; one byte over
    the store's `max_event_bytes` is an EventTooLarge (an EventError) giving both."""
    import orjson

    from interlock import MemoryStore
    from interlock.runtime.event_data import EventTooLarge

    router, got = _sync_and_async(MemoryStore(max_event_bytes=2000))
    attributes = len("e1") + len("interlock") + len("e.x") + len("2026-11-30T10:00:00.000Z")
    fits = {"pad": "é" * ((2000 - attributes - len(orjson.dumps({"pad": ""}))) // 2)}
    assert len(orjson.dumps(fits)) + attributes == 2000
    event = interlock_event(fits)
    assert router.validate(event) is event
    over = interlock_event({**fits, "n": 1})
    error = _refused(router, got, over, "the event is 2,006 bytes (its data as JSON, with its attributes); its store "
                                        "takes at most 2,000 (the store option `max_event_bytes`)")
    assert isinstance(error, EventTooLarge) and (error.size, error.limit) == (2006, 2000)


def interlock_event(data: dict[str, object]) -> Event:
    return Event("e.x", data, id="e1", time="2026-11-30T10:00:00.000Z")


def test_the_default_limit_is_1_mib_and_a_store_option() -> None:
    import interlock
    from interlock.runtime.event_data import EventTooLarge
    from interlock.runtime.store import DEFAULT_MAX_EVENT_BYTES
    from interlock.stores import StoreURLError, open_store

    assert DEFAULT_MAX_EVENT_BYTES == 1_048_576 == interlock.MemoryStore().max_event_bytes
    router, _got = _sync_and_async()
    router.validate("e.x", {"pad": "x" * 1_000_000})
    with pytest.raises(EventTooLarge, match="at most 1,048,576"):
        router.validate("e.x", {"pad": "x" * 1_048_576})
    store = open_store("memory://?max_event_bytes=262144")
    assert store.max_event_bytes == 262144 and repr(store) == "MemoryStore(max_event_bytes=262144)"
    router, _got = _sync_and_async("memory://?max_event_bytes=262144")
    with pytest.raises(EventTooLarge, match="at most 262,144"):
        router.validate("e.x", {"pad": "x" * 262_144})
    for url in ("memory://?max_event_bytes=0", "memory://?max_event_bytes=1e6", "memory://?max_event_bytes=",
                "memory://?max_unacked=5", "memory://?max_event_bytes=1&max_event_bytes=2"):
        with pytest.raises(StoreURLError, match="max_event_bytes"):
            open_store(url)
    with pytest.raises(ValueError, match="at least 1"):
        interlock.MemoryStore(max_event_bytes=0)


def test_what_a_store_holds_is_delivered_whatever_its_limit_says_now() -> None:
    """Nothing accepted is lost: deliveries stored under a larger limit (an earlier release's,
    another process's) are delivered after the limit is lowered; only publishes are held to it."""
    import asyncio

    from interlock import MemoryStore

    store = MemoryStore(max_event_bytes=10_000)
    router, got = _sync_and_async(store)
    sent = {"pad": "x" * 5000}

    async def main() -> None:
        await router.publish("e.x", sent)  # (delivery not running: the async delivery waits in the store)
        store.max_event_bytes = 1000
        async with router:
            await router.drain(5)

    asyncio.run(main())
    assert got == [sent, sent]  # (the sync target's call, then the async delivery)
