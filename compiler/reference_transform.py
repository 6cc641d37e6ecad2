"""The reference meaning of a transform: the object a delivery's `with { }` builds from an
event's data, read straight off the AST (docs/language.md, §4.10).

Simple on purpose, like `reference.py` for matching. The runtime has its own
implementation, from the artifact's form of a transform (runtime/transform.py), which
may not import this; tests/test_transforms.py checks that the two build the same object
on random transforms and events.

- `...` first puts in every field of the data; each key then sets its own, replacing one
  of the same name, unless its value is a copy that reaches nothing.
- A copied path reaches what `reference.values_at` finds (`null` is no value). Through a
  list (a list met before its last step) it gives the list of what it reaches; otherwise
  the one value. Reaching nothing, the key is left out.
- `path ?? fallback`: the path's value, or when it reaches nothing, the fallback's.
- A template is its text with, in each place, what the path would copy written as text:
  a string as it is, anything else as JSON (`5`, `5.0`, `true`, `["a","b"]`); nothing when
  the path reaches nothing.
- A constant is itself; a nested object is built by these same rules.
"""

from __future__ import annotations

import json
from typing import Any

from interlock.dsl import ast

from .reference import values_at


def payload(transform: ast.Transform, data: dict[str, Any]) -> dict[str, Any]:
    """What a target receives through `transform` for an event whose data is `data`."""
    built = dict(data) if transform.spread is not None else {}
    for entry in transform.entries:
        reached, value = _value(entry.value, data)
        if reached:
            built[entry.key.text] = value
    return built


def _value(value: ast.TransformValue, data: dict[str, Any]) -> tuple[bool, Any]:
    """(whether the value is there, the value)."""
    if isinstance(value, ast.Path):
        return _copy(value, data)
    if isinstance(value, ast.Default):
        reached, found = _copy(value.path, data)
        return (True, found) if reached else _value(value.fallback, data)
    if isinstance(value, ast.Template):
        pieces = []
        for part in value.parts:
            if isinstance(part, str):
                pieces.append(part)
            else:
                reached, found = _copy(part, data)
                pieces.append(_text(found) if reached else "")
        return True, "".join(pieces)
    if isinstance(value, ast.Transform):
        return True, payload(value, data)
    return True, ast.to_python(value)


def _copy(path: ast.Path, data: dict[str, Any]) -> tuple[bool, Any]:
    found = values_at(data, path.parts)
    if not found:
        return False, None
    return True, found if _meets_list(data, path.parts) else found[0]


def _meets_list(data: Any, parts: tuple[str, ...]) -> bool:
    """Whether a list stands at one of the steps before the path's last."""
    current = data
    for part in parts[:-1]:
        current = current.get(part) if isinstance(current, dict) else None
        if isinstance(current, list):
            return True
    return False


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float, as JSON writes it
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
