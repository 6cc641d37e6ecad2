"""`Event`: what handlers receive, and the CloudEvents JSON shape both ways.

Fields: `id` (what idempotency keys on; generated when absent), `type`, `data` (a JSON
object), `key` (the ordering key of this delivery, from its target's `order by`), `time`
(RFC 3339, UTC), `attempt` (1 for the first delivery), `source`, and `extensions`: the
CloudEvent's other attributes (`subject`, `traceparent`, ...), kept as they came.
"""

from __future__ import annotations

import os
import re
import reprlib
import time
from typing import Any

import attrs
import orjson

_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*\Z")
SOURCE = "interlock"


class EventError(ValueError):
    """An event that cannot be accepted; the message names the attribute or field."""


_REPR = reprlib.Repr()  # (3.11 takes no keywords)
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def shown(value: Any, width: int = 60, *, quoted: bool = True) -> str:
    """`repr(value)` for a message, cut to `width` characters, in time and depth bounded
    whatever the value is (data nested 100,000 deep, a string of a gigabyte); a string as it
    is without `quoted`."""
    if type(value) is str and not quoted:
        text = value[:width + 1]
    else:
        try:
            text = _REPR.repr(value)
        except ValueError:  # an integer of more than 4,300 digits, which Python does not write
            text = f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= width else text[:width] + "..."


_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text


def now_text() -> str:
    """Now as RFC 3339 in UTC, to the millisecond (the second's text is made once a second)."""
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second[1]}.{int((now - second) * 1000):03d}Z"


def new_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, as a UUID4 has (122), at a fifth of its cost


_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
                   r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z")


def check_time(time: Any) -> str:
    """An event's `time` as CloudEvents has it: an RFC 3339 timestamp."""
    if not isinstance(time, str) or not _TIME.match(time):
        raise EventError(f"event `time` must be an RFC 3339 timestamp such as \"2026-11-29T21:00:00Z\", not "
                         f"{shown(time)}")
    return time


# The attributes `Event` has fields for; any other is an extension (CloudEvents 1.0, 3.1).
_CORE = frozenset({"specversion", "id", "source", "type", "time", "datacontenttype", "data"})
_ATTRIBUTE = re.compile(r"[a-z0-9]{1,20}\Z")
MAX_EXTENSIONS = 32
MAX_EXTENSION_LENGTH = 4096


def check_extensions(extensions: dict[str, Any]) -> None:
    """CloudEvents extension attributes as they may be kept: a bounded number of them, each
    named in lower-case letters and digits, its value a string, a number or a boolean."""
    # (the trace context, `traceparent` and `tracestate`, is not counted: a publish sets it)
    counted = len(extensions) - ("traceparent" in extensions) - ("tracestate" in extensions)
    if counted > MAX_EXTENSIONS:
        raise EventError(f"a CloudEvent has at most {MAX_EXTENSIONS} extension attributes, not {counted}")
    for name, value in extensions.items():
        if name == "data_base64":
            raise EventError("CloudEvent `data_base64` (binary data) is not taken: data must be a JSON object")
        if not isinstance(name, str) or not _ATTRIBUTE.match(name):
            raise EventError(f"CloudEvent attribute {shown(name)}: a name is 1 to 20 lower-case letters and digits")
        if name in _CORE:
            raise EventError(f"CloudEvent attribute `{name}` is not an extension")
        if name in ("traceparent", "tracestate") and not (isinstance(value, str) and value.isascii()):
            raise EventError(f"CloudEvent attribute `{name}` must be W3C trace context text (ASCII)")
        if isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**31):
            continue
        if not isinstance(value, str):
            raise EventError(f"CloudEvent attribute `{name}` must be a string, an integer or a boolean")
        if len(value) > MAX_EXTENSION_LENGTH:
            raise EventError(f"CloudEvent attribute `{name}` is longer than {MAX_EXTENSION_LENGTH} characters")


def check_type(event_type: Any) -> str:
    if not isinstance(event_type, str) or not _TYPE.match(event_type):
        raise EventError(f"event type must be a dotted name such as `order.created`, not {shown(event_type)}")
    return event_type


@attrs.frozen
class Event:
    type: str = attrs.field(validator=lambda _i, _a, v: check_type(v))
    data: dict[str, Any] = attrs.field(factory=dict)
    id: str = attrs.field(factory=new_id)
    key: Any = None
    time: str = attrs.field(factory=now_text)
    attempt: int = 1
    source: str = SOURCE
    extensions: dict[str, Any] = attrs.field(factory=dict)

    @data.validator
    def _data(self, _attribute: Any, value: Any) -> None:
        if not isinstance(value, dict):
            raise EventError(f"event data must be a JSON object (a dict), not {type(value).__name__}")

    @id.validator
    def _id(self, _attribute: Any, value: Any) -> None:
        if not isinstance(value, str) or not value:
            raise EventError(f"event id must be a non-empty string, not {shown(value)}")

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents 1.0 JSON form (structured mode)."""
        return {
            **self.extensions,
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }

    @classmethod
    def from_cloudevent(cls, event: Any, *, stored: bool = False) -> Event:
        """An `Event` from a CloudEvents JSON object; raises EventError naming what is wrong.
        `stored`: read back from the store, where only events checked at publish go (their
        extension attributes are not checked again: a publish may add its trace context)."""
        if not isinstance(event, dict):
            raise EventError(f"a CloudEvent is a JSON object, not {type(event).__name__}")
        if event.get("specversion") != "1.0":
            raise EventError(f"CloudEvent `specversion` must be \"1.0\", not {shown(event.get('specversion'))}")
        for attribute in ("id", "source", "type"):
            if not isinstance(event.get(attribute), str) or not event[attribute]:
                raise EventError(f"CloudEvent attribute `{attribute}` must be a non-empty string")
        content_type = event.get("datacontenttype")
        media = "application/json" if content_type is None else str(content_type).split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise EventError(f"CloudEvent `datacontenttype` must be JSON, not {shown(content_type)}")
        data = event.get("data")
        extensions = {name: value for name, value in event.items() if name not in _CORE}
        if extensions and not stored:
            check_extensions(extensions)
        return cls(type=event["type"], data={} if data is None else data, id=event["id"],
                   time=event.get("time") or now_text(), source=event["source"], extensions=extensions)


def copy_of(ev: Event, encoded: bytes) -> Event:
    """The event with a copy of its data of its own, decoded from `encoded` (its data as JSON
    text, as runtime/event_data.py's `encode_data` gave it): what a handler changes, no one
    else sees."""
    return trusted_event(ev.type, orjson.loads(encoded), ev.id, ev.key, ev.time, ev.attempt, ev.source,
                         dict(ev.extensions))


_new = object.__new__
_set = {name: getattr(Event, name).__set__ for name in ("type", "data", "id", "key", "time", "attempt", "source",
                                                         "extensions")}
_SET_TYPE, _SET_DATA, _SET_ID, _SET_KEY, _SET_TIME, _SET_ATTEMPT, _SET_SOURCE, _SET_EXTENSIONS = _set.values()


def trusted_event(type: str, data: dict[str, Any], id: str, key: Any, time: str, attempt: int, source: str,
                  extensions: dict[str, Any]) -> Event:
    """An `Event` of values already checked (a publish checked them, or they were read back
    from the store, where only checked events go), without checking them again: the hot
    path of publish and delivery (a third of the cost of `Event(...)`)."""
    ev = _new(Event)
    _SET_TYPE(ev, type)
    _SET_DATA(ev, data)
    _SET_ID(ev, id)
    _SET_KEY(ev, key)
    _SET_TIME(ev, time)
    _SET_ATTEMPT(ev, attempt)
    _SET_SOURCE(ev, source)
    _SET_EXTENSIONS(ev, extensions)
    return ev
