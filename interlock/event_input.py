"""Events given to the command line as JSON text: `explain --event`, `simulate --events`,
`publish --event` and `--data`. Parsed into `Event`s the way `publish` takes them; every
problem is an `EventInputError` naming it, which each command reports as bad input."""

from __future__ import annotations

import json
from typing import Any

from interlock.runtime.event import Event, EventError
from interlock.runtime.event_data import TOO_DEEP


class EventInputError(ValueError):
    """JSON text that is not an event: the message says what is wrong."""


def parse(text: str, what: str) -> Any:
    """The JSON value of `text` (`what` names it in messages: a file, `--data`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventInputError(f"{what} is not JSON: {exc}") from None
    except RecursionError:  # (the decoder recurses once per level: about 1000 levels end it)
        raise EventInputError(f"{what} is {TOO_DEEP}") from None


def event_of(item: Any) -> Event:
    """An `Event` from a JSON value: `{"type": ..., "data": {...}}` (optionally with "id"),
    or a CloudEvent (it has "specversion"). EventError when it is neither, or its data is
    not an object."""
    if isinstance(item, dict) and "specversion" in item:
        return Event.from_cloudevent(item)
    if isinstance(item, dict) and "type" in item:
        return Event(item["type"], item.get("data", {}), **({"id": item["id"]} if "id" in item else {}))
    raise EventError('expected an object with "type" and "data", or a CloudEvent')
