"""What a target receives from one delivery, and how a test's `expect TARGET with { ... }` is
compared with it.

What a target receives is the event's data, or what the delivery's `with { ... }` makes of it:
the runtime's own `apply_transform` computes it, so a test sees exactly what a handler would.

The comparison (docs/language.md, §4.11), one rule at every depth:

- an object expected with `with` is matched by subset: each field it names must be in the
  payload with a matching value, and the payload may hold more fields; with `with exactly`,
  the payload may hold no other field, at any depth;
- a list matches a list of the same length whose items match in order, by the same rule;
- a value equals by the language's equality: numbers by value (`5` matches `5.0`), booleans
  are not numbers, strings exactly (a timestamp too: the target receives the text);
- `null` stands for no value, as everywhere in the language: a field expected `null` must be
  missing or `null` in the payload, and a field that is `null` in the payload is missing.

Each mismatch is a `Difference` at a path (`total.amount`, `items[1].sku`), so a failing step
shows which fields differ, not two blobs of JSON.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from interlock.dsl import ast
from interlock.runtime.transform import apply_transform

from .tables import _transform_json


def received(delivery: ast.Delivery, data: Any) -> Any:
    """What the target of `delivery` receives for an event with `data`."""
    if delivery.transform is None:
        return data
    return apply_transform(_transform_json(delivery.transform), data)


def canonical(payload: Any) -> str:
    """One text for payloads that are the same JSON (keys in any order); `1` and `1.0`, `true`
    and `1` stay apart, as they do on the wire."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)


@attrs.frozen
class Difference:
    """One place where a payload does not match what a test expects.

    `kind` is "differs" (both have a value), "missing" (the payload has none), or
    "unexpected" (a field that `with exactly` does not name); `expected` and `actual` are
    None where there is no value."""

    path: str
    kind: str
    expected: Any = None
    actual: Any = None


def compare(expected: dict[str, Any], actual: Any, exact: bool) -> list[Difference]:
    """Every difference between an expected payload and the one received (empty: it matches)."""
    found: list[Difference] = []
    _compare(expected, actual, exact, "", found)
    return found


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _compare(expected: Any, actual: Any, exact: bool, path: str, found: list[Difference]) -> None:
    if expected is None or actual is None:
        if expected is not None:
            found.append(Difference(path, "missing", expected=expected))
        elif actual is not None:
            found.append(Difference(path, "differs", actual=actual))
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            _compare(value, actual.get(key), exact, _at(path, key), found)
        if exact:
            found.extend(Difference(_at(path, key), "unexpected", actual=value)
                         for key, value in actual.items() if key not in expected and value is not None)
        return
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for number, (want, have) in enumerate(zip(expected, actual, strict=True)):
            _compare(want, have, exact, f"{path}[{number}]", found)
        return
    if not _equal(expected, actual):
        found.append(Difference(path, "differs", expected=expected, actual=actual))


def _equal(expected: Any, actual: Any) -> bool:
    """Scalars by the language's equality; a list or object is never equal to a scalar, nor a
    list to a list of another length."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and expected == actual
    if isinstance(expected, str):
        return isinstance(actual, str) and expected == actual
    return False
