"""Event data checked against a declared schema, at `publish`, before anything is stored.

The schema is the artifact's form (`events[TYPE]`): `{"type": "object", "fields": {NAME:
{"type": ..., "optional": bool, ...}}}` with types string, int, float, bool, timestamp,
any, list (with `item`) and object (with `fields`). Schemas are closed: a field they do
not declare is refused. `null` counts as absent. A float field takes integers; an int
field takes whole floats; a timestamp is an ISO 8601 string. `validate` raises at the first
problem (what `publish` does); `problems` lists them all (what `explain` shows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

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


@attrs.frozen
class SchemaProblem:
    """One way data breaks its schema: the field (`customer.tier`, `items[0].sku`; "" for the
    data as a whole) and what is wrong with it."""

    path: str
    message: str


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "any": lambda v: True,
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: _kind(v) == "number" and (isinstance(v, int) or v.is_integer()),  # (exact: 10**400 too)
    "float": lambda v: _kind(v) == "number",
    "timestamp": _timestamp,
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def validate(data: Any, schema: dict[str, Any], where: str = "") -> None:
    """Raise SchemaError, naming the field, unless `data` fits `schema` (the first problem found)."""
    _check(data, schema, where, None)


def problems(data: Any, schema: dict[str, Any]) -> list[SchemaProblem]:
    """Every way `data` breaks `schema`, in the order `validate` meets them (empty: it fits)."""
    found: list[SchemaProblem] = []
    _check(data, schema, "", found)
    return found


def _report(found: list[SchemaProblem] | None, path: str, message: str) -> None:
    if found is None:
        raise SchemaError(message)
    found.append(SchemaProblem(path, message))


def _check(data: Any, schema: dict[str, Any], where: str, found: list[SchemaProblem] | None) -> None:
    """Report each problem of `data` against `schema`: raise at the first (`found` None), or
    collect them all; nothing below a value of the wrong kind is looked at."""
    kind = schema["type"]
    subject = f"field `{where}`" if where else "the event data"
    if not _CHECKS[kind](data):
        expected = "an ISO 8601 timestamp" if kind == "timestamp" else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
        _report(found, where, f"{subject} must be {expected}, not {_kind(data)} {shown(data)}")
        return
    if kind == "list":
        for number, item in enumerate(data):
            if item is None:
                _report(found, f"{where}[{number}]", f"field `{where}[{number}]` is null; lists hold values")
            else:
                _check(item, schema["item"], f"{where}[{number}]", found)
    elif kind == "object":
        fields = schema["fields"]
        for name in data:
            if name not in fields:
                path = f"{where}.{name}" if where else name
                _report(found, path, f"field `{path}` is not in the schema of this event (declared: "
                                     f"{', '.join(fields) or 'none'})")
        for name, field in fields.items():
            path = f"{where}.{name}" if where else name
            value = data.get(name)
            if value is None:
                if not field.get("optional"):
                    _report(found, path, f"field `{path}` is required")
                continue
            _check(value, field, path, found)
