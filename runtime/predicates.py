"""Predicates of a compiled router: the artifact's JSON form, turned into Python closures.

This is the runtime's own implementation of the language's matching semantics (it may
not import the compiler's reference interpreter: a service runs from the artifact
alone). The property test `tests/test_compiled_matching.py` checks that the two agree
on random projects and events.

Predicate JSON (one object per node):
  {"op": "and" | "or", "args": [...]}     {"op": "not", "arg": {...}}
  {"op": "cmp", "path": [...], "cmp": "==" | "!=" | "<" | "<=" | ">" | ">=", "value": v, "timestamp"?: true}
  {"op": "in", "path": [...], "values": [...], "negated": bool, "timestamp"?: true}
  {"op": "range", "path": [...], "low": n, "high": n}
  {"op": "cidr", "path": [...], "network": "10.0.0.0/8"}
  {"op": "exists" | "missing" | "null", "path": [...]}
  {"op": "str", "path": [...], "test": "startswith" | "endswith" | "matches" | "equals_ignore_case"
                                       | "startswith_ignore_case" | "endswith_ignore_case", "value": s}
  {"op": "regex", "path": [...], "value": "RE2 pattern"}
  {"op": "contains", "path": [...], "value": v}
  {"op": "any", "path": [...], "arg": {...}}   (`any PATH { ... }`: `arg` on one element, paths from it)
Nodes also carry "text" (the source text) and "at" ([line, column]) for `explain`.

`"timestamp": true` (absent in artifacts written before it existed: the old behaviour)
marks a timestamp comparison: the event's value and the literals compare as instants. A
value is read as ISO 8601 by the rule of the compiler's E0206 check (`datetime.fromisoformat`,
a final `Z` for UTC; no offset means UTC); one that is not a string that reads so is of the
wrong kind (`==`, the orderings and `in` false, `!=` and `not in` true). The literals are
read once, here, at load.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from .regex import full_match

Predicate = Callable[[Any], bool]


def leaves(value: list[Any]) -> list[Any]:
    """The elements of a list, the elements of lists within it entered (at any depth)."""
    out: list[Any] = []
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def values_at(data: Any, path: list[str] | tuple[str, ...]) -> list[Any]:
    """Every value a path reaches: lists on the way are entered (lists within lists too),
    `null` is no value."""
    if len(path) == 1 and isinstance(data, dict):  # the common case, without the general loop
        value = data.get(path[0])
        return [] if value is None else [value]
    current = [data]
    for part in path:
        following = []
        for value in current:
            for item in leaves(value) if isinstance(value, list) else (value,):
                if isinstance(item, dict):
                    found = item.get(part)
                    if found is not None:
                        following.append(found)
        current = following
    return current


def null_at(data: Any, path: list[str] | tuple[str, ...]) -> bool:
    """Whether the path reaches a present `null`: its last field there and `null`, or a list
    with a `null` among its elements (a missing field is no `null`)."""
    last = path[-1]
    for value in values_at(data, path[:-1]) if len(path) > 1 else [data]:
        for item in leaves(value) if isinstance(value, list) else (value,):
            if isinstance(item, dict) and last in item:
                found = item[last]
                if found is None or (isinstance(found, list) and None in leaves(found)):
                    return True
    return False


def elements_at(data: Any, path: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """The objects `any PATH { ... }` tries: the values at the path, lists entered (at any
    depth); values that are not objects are no elements."""
    out: list[dict[str, Any]] = []
    for value in values_at(data, path):
        for item in leaves(value) if isinstance(value, list) else (value,):
            if isinstance(item, dict):
                out.append(item)
    return out


def scalars(values: list[Any]) -> list[Any]:
    """The values, a list at the end of the path opened into its elements (lists within it
    too)."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(v for v in leaves(value) if v is not None)
        else:
            out.append(value)
    return out


def kind(value: Any) -> int:
    """0 other, 1 bool, 2 number, 3 string: values of different kinds never compare."""
    t = type(value)
    if t is str:
        return 3
    if t is bool:
        return 1
    if t is int or t is float:
        return 2
    return 0


def equal(a: Any, b: Any) -> bool:
    k = kind(a)
    return k != 0 and k == kind(b) and bool(a == b)


def _order(value: Any, op: str, literal: Any) -> bool:
    k = kind(value)
    if k == 0 or k != kind(literal):
        return False
    if k == 2 and (value != value or literal != literal):  # NaN (math.isnan would make 10**400 a float)
        return False
    if op == "<":
        return bool(value < literal)
    if op == "<=":
        return bool(value <= literal)
    if op == ">":
        return bool(value > literal)
    return bool(value >= literal)


_fromisoformat = datetime.datetime.fromisoformat


# RFC 3339, with a space allowed for the `T`, the seconds optional, and a date alone (the
# rule of the compiler's E0206; `datetime.fromisoformat` alone takes far more).
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?"
                        r"([Zz]|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?", re.ASCII).fullmatch


def instant(value: Any) -> datetime.datetime | None:
    """The instant a timestamp string names (without an offset: UTC; a date alone: its
    midnight), or None."""
    if type(value) is not str:
        return None
    found = _TIMESTAMP(value)
    if found is None:
        return None
    date, time, offset = found.groups()
    try:
        return _fromisoformat(f"{date}T{time or '00:00'}{'+00:00' if offset is None or offset in 'Zz' else offset}")
    except ValueError:  # a month 13, a 25th hour
        return None


def _instant_order(cmp: str, literal: Any) -> Callable[[Any], bool]:
    """One value against a literal, as instants; the literal is read now."""
    bound = instant(literal)
    if bound is None:  # not a timestamp (the compiler does not write one): like a value of another kind
        return (lambda v: True) if cmp == "!=" else (lambda v: False)
    if cmp == "==":
        return lambda v: (t := instant(v)) is not None and t == bound
    if cmp == "!=":
        return lambda v: (t := instant(v)) is None or t != bound
    if cmp == "<":
        return lambda v: (t := instant(v)) is not None and t < bound
    if cmp == "<=":
        return lambda v: (t := instant(v)) is not None and t <= bound
    if cmp == ">":
        return lambda v: (t := instant(v)) is not None and t > bound
    return lambda v: (t := instant(v)) is not None and t >= bound


def _instant_in(literals: list[Any], negated: bool) -> Callable[[Any], bool]:
    """Membership of one value among literals, as instants (equal instants hash alike)."""
    bounds = frozenset(b for b in map(instant, literals) if b is not None)
    if negated:
        return lambda v: (t := instant(v)) is None or t not in bounds
    return lambda v: (t := instant(v)) is not None and t in bounds


def glob_matches(pattern: str, text: str) -> bool:
    """Shell glob over the whole string, in at most len(pattern) * len(text) steps."""
    tokens: list[tuple[bool, str]] = []  # (is_star, char or "?")
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            tokens.append((False, "\\" + pattern[i + 1]))
            i += 2
            continue
        tokens.append((ch == "*", ch))
        i += 1
    p = t = 0
    star = mark = -1
    while t < len(text):
        if p < len(tokens) and not tokens[p][0] and _one(tokens[p][1], text[t]):
            p += 1
            t += 1
        elif p < len(tokens) and tokens[p][0]:
            star, mark = p, t
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(tokens) and tokens[p][0]:
        p += 1
    return p == len(tokens)


def _one(token: str, char: str) -> bool:
    if token == "?":
        return True
    if token.startswith("\\"):
        return token[1] == char
    return token == char


def _string_test(test: str, literal: str) -> Callable[[Any], bool]:
    if test == "startswith":
        return lambda v: type(v) is str and v.startswith(literal)
    if test == "endswith":
        return lambda v: type(v) is str and v.endswith(literal)
    if test == "matches":
        return lambda v: type(v) is str and glob_matches(literal, v)
    folded = literal.casefold()
    if test == "startswith_ignore_case":
        return lambda v: type(v) is str and v.casefold().startswith(folded)
    if test == "endswith_ignore_case":
        return lambda v: type(v) is str and v.casefold().endswith(folded)
    return lambda v: type(v) is str and v.casefold() == folded


def _in_network(network: str) -> Callable[[Any], bool]:
    net = ipaddress.ip_network(network)

    def test(value: Any) -> bool:
        if type(value) is not str:
            return False
        try:
            return ipaddress.ip_address(value) in net
        except ValueError:
            return False

    return test


def _contains(literal: Any) -> Callable[[Any], bool]:
    def test(value: Any) -> bool:
        if isinstance(value, list):
            return any(equal(item, literal) for item in leaves(value))
        return type(value) is str and type(literal) is str and literal in value

    return test


def _any_scalar(path: list[str], test: Callable[[Any], bool]) -> Predicate:
    return lambda data: any(test(v) for v in scalars(values_at(data, path)))


def compile_predicate(node: dict[str, Any]) -> Predicate:
    """A closure that evaluates the predicate on an event's data."""
    op = node["op"]
    if op == "and":
        parts = [compile_predicate(a) for a in node["args"]]
        return lambda data: all(p(data) for p in parts)
    if op == "or":
        parts = [compile_predicate(a) for a in node["args"]]
        return lambda data: any(p(data) for p in parts)
    if op == "not":
        inner = compile_predicate(node["arg"])
        return lambda data: not inner(data)
    path = node["path"]
    if op == "any":
        inner = compile_predicate(node["arg"])
        return lambda data: any(inner(e) for e in elements_at(data, path))
    if op == "null":
        return lambda data: null_at(data, path)
    if op == "regex":
        return _any_scalar(path, full_match(node["value"]))
    if op == "exists":
        return lambda data: bool(values_at(data, path))
    if op == "missing":
        return lambda data: not values_at(data, path)
    if op == "contains":
        test = _contains(node["value"])
        return lambda data: any(test(v) for v in values_at(data, path))
    if op == "cmp":
        literal, cmp = node["value"], node["cmp"]
        if node.get("timestamp"):
            return _any_scalar(path, _instant_order(cmp, literal))
        if cmp == "==":
            return _any_scalar(path, lambda v: equal(v, literal))
        if cmp == "!=":
            return _any_scalar(path, lambda v: not equal(v, literal))
        return _any_scalar(path, lambda v: _order(v, cmp, literal))
    if op == "in":
        literals = node["values"]
        if node.get("timestamp"):
            return _any_scalar(path, _instant_in(literals, node["negated"]))
        if node["negated"]:
            return _any_scalar(path, lambda v: not any(equal(v, lit) for lit in literals))
        return _any_scalar(path, lambda v: any(equal(v, lit) for lit in literals))
    if op == "range":
        low, high = node["low"], node["high"]
        return _any_scalar(path, lambda v: _order(v, ">=", low) and _order(v, "<=", high))
    if op == "cidr":
        return _any_scalar(path, _in_network(node["network"]))
    if op == "str":
        return _any_scalar(path, _string_test(node["test"], node["value"]))
    raise ValueError(f"unknown predicate op {op!r}")
