"""The checks of rules as Python source: what a person writes by hand, compiled once at load.

A rule's remaining tests (those its index lookup did not answer) become one function of the
event's data, a plain `dict` (the generated matching code and `_fire` call it only on one):

    def r12_big_orders(data):
        return ((((t := type((v := data.get('amount')))) is int or t is float) and 100 <= v <= 400)
                or (isinstance(v, list) and any(... for y in leaves(v) if y is not None)))  # route ...

comparisons, set membership, `startswith`, interval tests written inline, by the exact type
rules of docs/language.md §5 (`5 == 5.0`, `true` apart from 1, a string never a number, NaN in no
range, a list at the end of a path its elements). What has no short inline form (timestamps,
CIDR, globs, regular expressions, `is null`, `any PATH { ... }`, `contains` on a list) calls the
closure of `predicates.compile_predicate` for that node, from the generated code.

All rules are one module, registered in `linecache` under a name that says so, and each
function's `return` line ends with a comment naming its route and where it is written: a
traceback or a profile inside generated code names the route's file and line, as Jinja's
compiled templates point back at theirs.
"""

from __future__ import annotations

import json
import linecache
import math
import re
from collections.abc import Callable
from typing import Any

from .predicates import Predicate, compile_predicate, elements_at, leaves, scalars, values_at

_BOOL = object()  # a boolean's key in a membership set is (_BOOL, value): apart from 0 and 1
_NAME = re.compile(r"[^A-Za-z0-9_]")
Test = Callable[[str, str], str]
# `and`, `or` and `not` nested deeper than this are called as their closure: each level is a
# pair of parentheses, and a test of one value a few more, within CPython's 200.
MAX_INLINE_DEPTH = 40  # a test of one value: (how it is first written, how after) -> source


class RuleSource:
    """Collects one function per rule, then compiles them together (`build`)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.names: dict[str, Any] = {"leaves": leaves, "scalars": scalars, "values_at": values_at,
                                      "elements_at": elements_at, "_B": _BOOL}
        self.lines: list[str] = []
        self.functions: list[str] = []

    def add(self, checks: list[dict[str, Any]], number: int, route: str, where: str) -> int:
        """A function for the conjunction of `checks`; its index in what `build` returns."""
        name = f"r{number}_{_NAME.sub('_', route)[:60]}_{len(self.functions)}"  # (one source may hold a rule twice)
        body = " and ".join(self.expression(node) for node in checks) or "True"
        note = json.dumps(f"route {route}, {where}")[1:-1]  # one line, whatever the artifact holds
        self.lines += [f"def {name}(data):", f"    return {body}  # {note}", ""]
        self.functions.append(name)
        return len(self.functions) - 1

    def build(self) -> list[Predicate]:
        filename = f"<interlock checks: {self.label}>"
        source = "\n".join(self.lines)
        linecache.cache[filename] = (len(source), None, [line + "\n" for line in self.lines], filename)
        exec(compile(source, filename, "exec"), self.names)
        return [self.names[name] for name in self.functions]

    # ---- expressions ---------------------------------------------------------------

    def constant(self, value: Any, prefix: str = "K") -> str:
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def literal(self, value: Any) -> str:
        """A literal as source: numbers and strings written out, the rest through a name."""
        if type(value) is str or type(value) is int:
            return repr(value)
        if type(value) is float and math.isfinite(value):
            return repr(value)
        return self.constant(value)

    def closure(self, node: dict[str, Any]) -> str:
        return f"{self.constant(compile_predicate(node), 'P')}(data)"

    def expression(self, node: dict[str, Any], depth: int = 0) -> str:
        op = node["op"]
        if depth >= MAX_INLINE_DEPTH:  # Python's parser takes at most 200 nested parentheses
            return self.closure(node)
        if op in ("and", "or"):
            return "(" + f" {op} ".join(self.expression(a, depth + 1) for a in node["args"]) + ")"
        if op == "not":
            return f"(not {self.expression(node['arg'], depth + 1)})"
        path = node["path"]
        if op in ("exists", "missing"):
            present = (f"(data.get({path[0]!r}) is not None)" if len(path) == 1
                       else f"bool(values_at(data, {self.constant(path)}))")
            return present if op == "exists" else f"(not {present})"
        found = None if node.get("timestamp") else self.value_test(node)
        if found is None:
            return self.closure(node)
        test, positive = found
        if len(path) > 1:
            return f"any({test('y', 'y')} for y in scalars(values_at(data, {self.constant(path)})))"
        get = f"(v := data.get({path[0]!r}))"
        elements = f"any({test('y', 'y')} for y in leaves(v) if y is not None)"
        if positive:
            # False on no value and on a list, so tried first: the list's elements only after it
            # (lists within entered, nulls left out).
            return f"({test(get, 'v')} or (isinstance(v, list) and {elements}))"
        return f"({get} is not None and ({test('v', 'v')} if not isinstance(v, list) else {elements}))"

    def value_test(self, node: dict[str, Any]) -> tuple[Test, bool] | None:
        """The test of one present value that is not a list, as a function of how the value is
        written where it is first used (`first`: it may bind it) and after (`later`); and
        whether the test is positive (false on `None` and on a list, so it may be tried before
        knowing whether the value is a list). None: the node is left to its closure."""
        op = node["op"]
        if op == "cmp":
            return self.comparison(node["cmp"], node["value"])
        if op == "in":
            member = self.membership(node["values"])
            if node["negated"]:
                return (lambda first, later: f"(not {member(first, later)})"), False
            return member, True
        if op == "range":
            low, high = node["low"], node["high"]
            if not all(type(b) in (int, float) and b == b for b in (low, high)):
                return None
            bounds = self.literal(low), self.literal(high)
            return (lambda first, later: f"({_number(first, later)} and {bounds[0]} <= {later} <= {bounds[1]})"), True
        if op == "str":
            found = self.string_test(node["test"], node["value"])
            return None if found is None else (found, True)
        return None

    def comparison(self, cmp: str, value: Any) -> tuple[Test, bool] | None:
        if value is None or (type(value) is float and value != value):
            # `== null` and the orderings are false; `!= null` holds for any value; NaN equals
            # nothing and orders with nothing.
            if cmp == "!=":
                return (lambda first, later: "True"), False
            return (lambda first, later: f"({first} is not {first})"), True  # (binds the value, and is false)
        kind: Test
        if type(value) is bool:
            kind, literal = (lambda first, later: f"type({first}) is bool"), repr(value)
        elif type(value) in (int, float):
            kind, literal = _number, self.literal(value)
        elif type(value) is str:
            kind, literal = (lambda first, later: f"type({first}) is str"), repr(value)
        else:
            return None
        if cmp == "!=":
            return (lambda first, later: f"(not ({later} == {literal} and {kind(later, later)}))"), False
        if cmp == "==":  # the comparison first: most values differ, and it binds the value
            return (lambda first, later: f"({first} == {literal} and {kind(later, later)})"), True
        return (lambda first, later: f"({kind(first, later)} and {later} {cmp} {literal})"), True

    def membership(self, values: list[Any]) -> Test:
        keys = frozenset((_BOOL, v) if type(v) is bool else v for v in values
                         if type(v) in (str, int, float, bool) and v == v)
        if not keys:
            return lambda first, later: f"({first} is not {first})"  # (binds the value, and is false)
        name = self.constant(keys, "S")
        scalar_keys = any(type(k) is not tuple for k in keys)
        bool_keys = any(type(k) is tuple for k in keys)

        def test(first: str, later: str) -> str:
            parts = []
            if scalar_keys:
                kinds = {type(k) for k in keys if type(k) is not tuple}
                kind = (f"type({first}) is str" if kinds == {str} else _number(first, later) if str not in kinds
                        else f"((t := type({first})) is str or t is int or t is float)")
                parts.append(f"({kind} and {later} in {name})")
            if bool_keys:
                parts.append(f"(type({later if parts else first}) is bool and (_B, {later}) in {name})")
            return "(" + " or ".join(parts) + ")"

        return test

    def string_test(self, test: str, value: Any) -> Test | None:
        if type(value) is not str:
            return None
        literal, folded = repr(value), repr(value.casefold())
        forms: dict[str, Callable[[str], str]] = {
            "startswith": lambda v: f"{v}.startswith({literal})",
            "endswith": lambda v: f"{v}.endswith({literal})",
            "equals_ignore_case": lambda v: f"{v}.casefold() == {folded}",
            "startswith_ignore_case": lambda v: f"{v}.casefold().startswith({folded})",
            "endswith_ignore_case": lambda v: f"{v}.casefold().endswith({folded})",
        }
        form = forms.get(test)
        if form is None:  # `matches`: the glob's own function, in its closure
            return None
        return lambda first, later: f"(type({first}) is str and {form(later)})"


def _number(first: str, later: str) -> str:
    # (`type` called once: `t` is bound where the test runs, a function's local, as `v` is)
    return f"((t := type({first})) is int or t is float)"


def anchor_node(anchor: dict[str, Any]) -> dict[str, Any]:
    """A rule's anchor (compiler/tables.py) as the predicate it tests, for code that tests a
    rule whole. (An anchor found by a superset, a regular expression's prefix, is a weaker
    test whose full test is among the rule's checks: testing both is the rule.)"""
    path, kind = anchor["path"], anchor["kind"]
    if kind == "eq":
        return {"op": "in", "path": path, "values": anchor["values"], "negated": False}
    if kind in ("prefix", "folded"):
        test = "startswith" if kind == "prefix" else "startswith_ignore_case"
        return {"op": "str", "path": path, "test": test, "value": anchor["prefix"]}
    low, high = anchor["low"], anchor["high"]
    if low is not None and high is not None:  # only `in LOW..HIGH`, both ends included, gives both
        return {"op": "range", "path": path, "low": low, "high": high}
    if low is not None:
        return {"op": "cmp", "path": path, "cmp": ">=" if anchor["low_inclusive"] else ">", "value": low}
    return {"op": "cmp", "path": path, "cmp": "<=" if anchor["high_inclusive"] else "<", "value": high}
