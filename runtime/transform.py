"""What a target receives: the event's data through a route's `with { }`, its ordering key,
and the attempt number."""

from __future__ import annotations

from typing import Any

from .event import Event
from .predicates import values_at


def apply_transform(transform: dict[str, Any], data: Any) -> dict[str, Any]:
    """What a target receives from a `with { }`: copied fields, constants, nested objects.
    A copied path that reaches nothing is left out; one that passes through lists gives a list."""
    out: dict[str, Any] = {}
    for key, spec in transform.items():
        if "copy" in spec:
            found = values_at(data, spec["copy"])
            through_list = _passes_list(data, spec["copy"])
            if found:
                out[key] = found if through_list else found[0]
        elif "object" in spec:
            out[key] = apply_transform(spec["object"], data)
        else:
            out[key] = spec["value"]
    return out


def _passes_list(data: Any, path: list[str]) -> bool:
    current = data
    for part in path[:-1]:
        if not isinstance(current, dict):
            return False
        current = current.get(part)
        if isinstance(current, list):
            return True
    return False


def key_of(data: Any, path: list[str] | None) -> Any:
    """The ordering key of `data` for a target ordered by `path` (None: not ordered)."""
    if path is None:
        return None
    found = values_at(data, path)
    return found[0] if len(found) == 1 and not isinstance(found[0], (list, dict)) else (
        repr(found) if found else None)


def delivered(ev: Event, transform: dict[str, Any] | None, attempt: int, key: Any) -> Event:
    """The event a handler is called with (`transform` None: its data as published; `{}`,
    from `with { }`, builds an empty object)."""
    if transform is None and attempt == ev.attempt and key is None and ev.key is None:
        return ev  # what the handler receives is the event as published
    data = apply_transform(transform, ev.data) if transform is not None else ev.data
    return Event(ev.type, data, id=ev.id, key=key, time=ev.time, attempt=attempt, source=ev.source,
                 extensions=ev.extensions)
