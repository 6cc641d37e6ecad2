"""What a publish accepts of an event, checked once, before anything is stored or called
(docs/runtime.md, "Limits"), and its data as the JSON text its deliveries carry.

- **JSON values alone**: the data is a dict whose keys are strings and whose values are
  dicts, lists, strings, integers, floats, booleans and None, of exactly these types (a
  dict's subclasses aside: an OrderedDict is a dict to routing too). A tuple, an enum, a
  UUID or a subclass of `str` would travel as something else (a tuple as a list, a key `1`
  as `"1"`: `{1: "a", "1": "b"}` would reach a handler as `{"1": "b"}`), so the routing
  decision and the handler would not see the same event: refused instead.
- **Exactly readable back**: no NaN or infinite number, no lone surrogate (in values, keys,
  the id, source or extensions), integers within 64 bits (beyond, JSON parsers read them
  as floats).
- **Bounded**: nesting within `MAX_DEPTH` levels (the data object is level 1), and the event
  within its store's `max_event_bytes` (runtime/store.py): its data as JSON with its
  attributes.

A refusal is an EventError naming the place (`EventTooLarge` for the size); the common case
costs one orjson encoding and one pass over the values, with no recursion anywhere.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import orjson

from .event import Event, EventError, shown

MAX_DEPTH = 64  # levels of nesting in event data (what System.Text.Json reads by default)
# What a reader of JSON text says of text nested past the recursion of Python's decoder.
TOO_DEEP = f"nested too deep to read (event data is nested at most {MAX_DEPTH} levels)"
_INT_RANGE = (-2**63, 2**64)  # what orjson writes, and JSON parsers read back as integers
_INF = float("inf")
_SCALARS = frozenset({str, int, bool, type(None)})  # (float apart: it must be finite)
_BUILTINS = (list, str, int, float)

# orjson, strict: a datetime, a dataclass, bytes, a set, a key that is not a string are
# refused (not written as something else).
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class EventTooLarge(EventError):
    """An event larger than its store takes (`max_event_bytes`)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the event is {size:,} bytes (its data as JSON, with its attributes); its store takes at "
                         f"most {limit:,} (the store option `max_event_bytes`)")
        self.size = size
        self.limit = limit


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def encode_data(ev: Event, max_bytes: int) -> bytes:
    """The event's data as JSON text (UTF-8), once checked that a publish may accept the
    event (see the module's docstring), `max_bytes` the most it may weigh. EventError names
    the first place that is not JSON; EventTooLarge gives the size and the limit. What a
    delivery entry carries as it is."""
    try:
        encoded = orjson.dumps(ev.data, default=_refuse, option=_JSON_OPTIONS)
        size = len(encoded) + _attributes_size(ev)
    except (ValueError, TypeError):  # (orjson's JSONEncodeError, a UnicodeEncodeError)
        raise EventError(_first_non_json(ev)) from None
    if size > max_bytes:
        raise EventTooLarge(size, max_bytes)
    if not _plain(ev.data):
        raise EventError(_first_non_json(ev))
    return encoded


def _attributes_size(ev: Event) -> int:
    """The bytes of the event's attributes as UTF-8 text; a ValueError or a TypeError for one
    that is not text (or holds a lone surrogate)."""
    size = _utf8_length(ev.id) + _utf8_length(ev.source) + _utf8_length(ev.type) + _utf8_length(ev.time)
    if ev.extensions:
        size += len(json.dumps(ev.extensions, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    return size


def _utf8_length(text: Any) -> int:
    if type(text) is not str:
        raise TypeError(type(text).__name__)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _plain(data: dict[str, Any]) -> bool:
    """Whether data that orjson encoded (so its keys are strings and no value is of a type
    it refuses) holds JSON values alone, floats finite, nested within MAX_DEPTH levels: what
    orjson writes without a word (a tuple, an enum, a UUID, a subclass of str; NaN as null)
    and its depth bound (254) leave to this. One pass, level by level."""
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH):
        nested = []
        for container in level:
            for value in container if type(container) is list else container.values():
                kind = type(value)
                if kind is dict or kind is list:
                    nested.append(value)
                elif kind is float:
                    if value - value != 0.0:  # NaN, or an infinity (inf - inf is NaN)
                        return False
                elif kind not in _SCALARS:
                    if not isinstance(value, dict):
                        return False
                    nested.append(value)
        if not nested:
            return True
        level = nested
    return False


# A place in the data: None (the data itself), or (the place of its container, a key or an index).
_Place = tuple[Any, str | int] | None


def _field(place: _Place) -> str:
    """`a.b[2].c`, each key cut to 40 characters and the whole to 200."""
    steps: list[str] = []
    while place is not None:
        place, step = place
        steps.append(f"[{step}]" if type(step) is int else "." + shown(step, 40, quoted=False))
    text = "".join(reversed(steps)).removeprefix(".")
    return "field `" + (text if len(text) <= 200 else text[:200] + "...") + "`"


def _first_non_json(ev: Event) -> str:
    """What `encode_data` refused, in words: the first attribute or place in the data (in
    the order of the data) that is not accepted. Iterative: any depth."""
    for name in ("id", "source", "type", "time"):
        value = getattr(ev, name)
        if type(value) is not str:
            return f"event `{name}` must be a string, not {type(value).__name__}"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"event `{name}` holds a lone surrogate (text that is not Unicode)"
    for name, value in ev.extensions.items():
        try:
            json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, TypeError):
            return f"CloudEvent attribute `{name}` is not JSON text"
    return _first_in_data(ev.data) or "event data is not JSON"


def _first_in_data(data: Any) -> str | None:
    stack: list[tuple[Any, int, _Place]] = [(data, 1, None)]  # (a value, the level of a container there, where)
    while stack:
        value, level, place = stack.pop()
        kind = type(value)
        if kind is list or isinstance(value, dict):
            if level > MAX_DEPTH:
                return f"{_field(place)} is nested deeper than {MAX_DEPTH} levels, the most event data may be"
            if kind is list:
                stack.extend((item, level + 1, (place, n)) for n, item in reversed(list(enumerate(value))))
                continue
            children = []
            for key, item in value.items():
                if type(key) is not str:
                    where = "the event data" if place is None else _field(place)
                    return (f"{where} has a key of type {type(key).__name__}, {shown(key, 40)}: the field names "
                            "of event data are strings (`str`)")
                if not _unicode(key):
                    where = "the event data" if place is None else _field(place)
                    return f"a field name in {where} holds a lone surrogate (text that is not Unicode)"
                children.append((item, level + 1, (place, key)))
            stack.extend(reversed(children))
        elif kind is float:
            if value != value or value in (_INF, -_INF):
                return f"{_field(place)} is {value}, which JSON cannot carry"
        elif kind is int:
            if not _INT_RANGE[0] <= value < _INT_RANGE[1]:
                return (f"{_field(place)} is an integer beyond 64 bits, which JSON parsers do not read back exactly "
                        "(send it as a string)")
        elif kind is str:
            if not _unicode(value):
                return f"{_field(place)} holds a lone surrogate (text that is not Unicode)"
        elif kind is not bool and value is not None:
            return f"{_field(place)} is {_not_json(value)}"
    return None


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_json(value: Any) -> str:
    """A value of a type event data does not hold, and what to send instead."""
    name = type(value).__name__
    if isinstance(value, tuple):
        what = f"of type {name} (send a list)"
    elif isinstance(value, enum.Enum):
        what = f"of type {name}, an enum (send its `.value`)"
    elif isinstance(value, _BUILTINS):
        base = next(b for b in _BUILTINS if isinstance(value, b)).__name__
        what = f"of type {name}, a subclass of {base} (send a plain {base})"
    else:
        what = f"of type {name}, which JSON cannot carry"
    return (f"{what}: event data holds dicts with string keys, lists, strings, numbers, booleans and None, of "
            "exactly these types")
