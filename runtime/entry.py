"""A delivery's stream entry: what an attempt needs and no more, in a compact JSON array.

    [2, id, type, time, source, first_ms, key, routes, data, more]

`data` is the event's data as the publish encoded it (orjson, once: runtime/event.py), and
`more` is null or an object of what most deliveries lack: `extensions` (the CloudEvent's
other attributes), `transform` (the route's `with { }`), `attempt` (after the first),
`errors` (the failed attempts so far), `delivery` (its id, when it is not `EVENT-ID/TARGET`).
The target is the stream's (`deliveries.TARGET` or a partition of it), so it is not stored.
About 120 bytes for a small event, against 410 for the CloudEvent with routing fields that
entries were before; that older form (a JSON object) is still read, so deliveries written
by an older version are delivered after an upgrade.

In the engine, a delivery is a dict (`unpack`): `event` (an `Event`, built without its checks
again: only checked events are stored), `target`, `routes`, `transform`, `attempt`,
`first_ms`, `errors`, `delivery`, `key`.
"""

from __future__ import annotations

from typing import Any

import orjson

from .event import Event, trusted_event
from .store import Packed

FORMAT = 2


def delivery_entry(ev: Event, data: bytes | None, target: str, routes: list[str], transform: Any, key: Any,
                   first_ms: int) -> dict[str, Any]:
    """A first attempt's delivery, as the engine holds it (`data`: the event's data encoded
    by its publish, carried as it is; None: encoded when packed)."""
    return {"event": ev, "target": target, "routes": routes, "transform": transform, "attempt": 1,
            "first_ms": first_ms, "errors": [], "delivery": f"{ev.id}/{target}", "key": key, "data": data}


def pack(delivery: dict[str, Any]) -> Packed:
    """The entry of a delivery, for the store."""
    ev: Event = delivery["event"]
    more: dict[str, Any] = {}
    if ev.extensions:
        more["extensions"] = ev.extensions
    if delivery["transform"] is not None:  # `{}` too: `with { }` delivers an empty object
        more["transform"] = delivery["transform"]
    if delivery["attempt"] != 1:
        more["attempt"] = delivery["attempt"]
    if delivery["errors"]:
        more["errors"] = delivery["errors"]
    if delivery["delivery"] != f"{ev.id}/{delivery['target']}":
        more["delivery"] = delivery["delivery"]
    data = delivery.get("data")
    return Packed(orjson.dumps([FORMAT, ev.id, ev.type, ev.time, ev.source, delivery["first_ms"], delivery["key"],
                                delivery["routes"], ev.data if data is None else orjson.Fragment(data),
                                more or None]))


def unpack(entry: Any, target: str) -> dict[str, Any]:
    """A delivery as the engine holds it, from the entry read back (either form) of a stream
    of `target`."""
    if isinstance(entry, dict):  # the form before FORMAT 2: a CloudEvent and routing fields
        delivered = dict(entry)
        delivered["event"] = Event.from_cloudevent(entry["event"], stored=True)
        delivered["data"] = None
        return delivered
    _format, event_id, event_type, time, source, first_ms, key, routes, data, more = entry
    more = more or {}
    ev = trusted_event(event_type, data, event_id, None, time, 1, source, more.get("extensions") or {})
    return {"event": ev, "target": target, "routes": routes, "transform": more.get("transform"),
            "attempt": more.get("attempt", 1), "first_ms": first_ms, "errors": more.get("errors", []),
            "delivery": more.get("delivery") or f"{event_id}/{target}", "key": key, "data": None}
