"""`Event` and CloudEvents both ways; data against schemas at publish."""

from __future__ import annotations

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
