"""What a target receives: the event's data through a route's `with { }`, its ordering key,
and the attempt number.

A transform, as the artifact holds it, gives per key of the object it builds one of:

    {"copy": PATH}                    the value at PATH; the key is left out when there is none
    {"copy": PATH, "default": SPEC}   the value at PATH, or when there is none what SPEC builds
    {"template": [TEXT | PATH, ...]}  a string: the texts, each PATH's value written in its place
    {"object": TRANSFORM}             a nested object
    {"value": V}                      a constant

and under the key "" (no key of the source is empty) `{"spread": []}`: the object starts as
the fields of the event's data, which its other keys replace. Templates, defaults and the
spread came with artifact version 2 (runtime/artifact.py). What a template builds is its
text and, per place, the text of one value of the event: at most the size of the event per
place, built in time linear in it, and the templates of one transform build at most
MAX_TEMPLATE_TEXT characters together.
"""

from __future__ import annotations

import json
from typing import Any

from .event import Event
from .predicates import values_at

_NONE = object()  # a path that reaches no value


def apply_transform(transform: dict[str, Any], data: Any) -> dict[str, Any]:
    """The object a `with { }` builds from an event's data (see the module docstring)."""
    return _apply(transform, data, [MAX_TEMPLATE_TEXT])


def _apply(transform: dict[str, Any], data: Any, budget: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = dict(data) if "" in transform and isinstance(data, dict) else {}
    for key, spec in transform.items():
        if key:
            value = _build(spec, data, budget)
            if value is not _NONE:
                out[key] = value
    return out


def _build(spec: dict[str, Any], data: Any, budget: list[int]) -> Any:
    if "copy" in spec:
        value = _copied(data, spec["copy"])
        if value is _NONE and "default" in spec:
            return _build(spec["default"], data, budget)
        return value
    if "template" in spec:
        return _render(spec["template"], data, budget)
    if "object" in spec:
        return _apply(spec["object"], data, budget)
    return spec["value"]


def _copied(data: Any, path: list[str]) -> Any:
    """What a transform copies from a path: its value, or the list of the values it reaches
    when it goes through a list (lists within lists entered); `_NONE` when it reaches none
    (missing or `null`)."""
    found = values_at(data, path)
    if not found:
        return _NONE
    return found if _passes_list(data, path) else found[0]


class TransformError(ValueError):
    """What a `with { }` would build is refused: the message says why. The delivery fails, as
    a handler's failure does, and ends in its dead letter with the message."""


# The most text the templates of one `with { }` may build together: a template of many places
# over a large field would build the field's text once per place (100,000 places of a 1 KB
# field: 100 MB), and so would many templates of a few places each.
MAX_TEMPLATE_TEXT = 1 << 20


def _render(parts: list[Any], data: Any, budget: list[int]) -> str:
    """A template's text: its text parts, and in each path's place the text of what the path
    copies (nothing when it reaches no value); at most what is left of `budget[0]`, the
    characters the transform's templates may still build."""
    out = []
    size = 0
    for part in parts:
        if isinstance(part, str):
            piece = part
        else:
            value = _copied(data, part)
            if value is _NONE:
                continue
            piece = text_of(value)
        size += len(piece)
        if size > budget[0]:
            raise TransformError(f"the templates of this `with {{ }}` build more than {MAX_TEMPLATE_TEXT} characters "
                                 "from this event (a place repeats a large field): shorten the templates or the field")
        out.append(piece)
    budget[0] -= size
    return "".join(out)


def text_of(value: Any) -> str:
    """A value as a template writes it: a string as it is; a number, a boolean, a list or an
    object as JSON writes it (`5`, `5.0`, `1e+16`, `true`, `["a","b"]`, `{"id":"c1"}`:
    compact, keys in the event's order, other than ASCII kept)."""
    if isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
