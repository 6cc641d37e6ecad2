"""Event data checked against a declared schema, at `publish`, before anything is stored.

The schema is the artifact's form (`events[TYPE]`): `{"type": "object", "fields": {NAME:
{"type": ..., "optional": bool, ...}}}` with types string, int, float, bool, timestamp,
any, list (with `item`) and object (with `fields`). Schemas are closed: a field they do
not declare is refused. `null` counts as absent. A float field takes integers; an int
field takes whole floats; a timestamp is an ISO 8601 string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .event import shown
from .predicates import instant


class SchemaError(ValueError):
    """Data that breaks its event's schema; the message names the field."""


def _timestamp(value: Any) -> bool:
    return instant(value) is not None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def validate(data: Any, schema: dict[str, Any], where: str = "") -> None:
    """Raise SchemaError, naming the field, unless `data` fits `schema`."""
    kind = schema["type"]
    subject = f"field `{where}`" if where else "the event data"
    checks: dict[str, Callable[[Any], bool]] = {
        "any": lambda v: True,
        "string": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: _kind(v) == "number" and (isinstance(v, int) or v.is_integer()),  # (exact: 10**400 too)
        "float": lambda v: _kind(v) == "number",
        "timestamp": _timestamp,
        "list": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if not checks[kind](data):
        expected = "an ISO 8601 timestamp" if kind == "timestamp" else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
        raise SchemaError(f"{subject} must be {expected}, not {_kind(data)} {shown(data)}")
    if kind == "list":
        for number, item in enumerate(data):
            if item is None:
                raise SchemaError(f"field `{where}[{number}]` is null; lists hold values")
            validate(item, schema["item"], f"{where}[{number}]")
    elif kind == "object":
        fields = schema["fields"]
        for name in data:
            if name not in fields:
                path = f"{where}.{name}" if where else name
                raise SchemaError(f"field `{path}` is not in the schema of this event (declared: "
                                  f"{', '.join(fields) or 'none'})")
        for name, field in fields.items():
            path = f"{where}.{name}" if where else name
            value = data.get(name)
            if value is None:
                if not field.get("optional"):
                    raise SchemaError(f"field `{path}` is required")
                continue
            validate(value, field, path)
