"""The checks of rules as Python source: what a person writes by hand, compiled once at load.

A rule's remaining tests (those its index lookup did not answer) become one function of the
event's data, a plain `dict` (the generated matching code and `_fire` call it only on one):

    def check(data):  # made by a factory shape12(K0, K1), called with 100 and 400
        return ((((t := type((v := data.get('amount')))) is int or t is float) and K0 <= v <= K1)
                or (isinstance(v, list) and any(... for y in leaves(v) if y is not None)))

comparisons, set membership, `startswith`, interval tests written inline, by the exact type
rules of docs/language.md §5 (`5 == 5.0`, `true` apart from 1, a string never a number, NaN in no
range, a list at the end of a path its elements). What has no short inline form (timestamps,
CIDR, globs, regular expressions, `is null`, `any PATH { ... }`, `contains` on a list) calls the
closure of `predicates.compile_predicate` for that node, from the generated code.

Rules that differ only in their constants share one compiled factory (`RuleSource`). All of
them are one module, registered in `linecache` under a name that says so, and each rule's
function is named after its route and where it is written (`route big_orders,
shop.route:12:1`): a traceback or a profile inside generated code names the route's file and
line, as Jinja's compiled templates point back at theirs. A table tested rule by rule writes
its rules inline instead, each line ending with a comment that names its route.
"""

from __future__ import annotations

import linecache
import math
from collections.abc import Callable
from typing import Any

from .predicates import Predicate, compile_predicate, elements_at, leaves, scalars, values_at

_BOOL = object()  # a boolean's key in a membership set is (_BOOL, value): apart from 0 and 1
Test = Callable[[str, str], str]
# `and`, `or` and `not` nested deeper than this are called as their closure: each level is a
# pair of parentheses, and a test of one value a few more, within CPython's 200.
MAX_INLINE_DEPTH = 40  # a test of one value: (how it is first written, how after) -> source


class RuleSource:
    """Collects one function per rule, then compiles them together (`build`).

    Rules alike but for their constants share their code: a rule's constants (strings,
    numbers, sets, paths, closures) are parameters `K0`, `K1`, ... of a factory compiled once
    per *shape*, the text of the test with them left out, and each rule's function is the
    factory called with its own constants. Compiling costs about 0.1 ms a function, so the
    checks of 10,000 rules `kind == "k1"` ... `kind == "k10000"` are one compile, not a second
    of them. Each function's code names its rule (`route NAME, FILE:LINE:COLUMN`), so a
    traceback or a profile inside it says which route it tests."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.names: dict[str, Any] = {"leaves": leaves, "scalars": scalars, "values_at": values_at,
                                      "elements_at": elements_at, "_B": _BOOL}
        self.shapes: dict[str, tuple[int, int]] = {}  # a test's text, constants left out -> (number, how many)
        self.functions: list[tuple[int, list[Any], str]] = []  # (shape, constants, what to call it)
        self.parameters: list[Any] | None = None  # the constants of the test being written, if any

    def add(self, checks: list[dict[str, Any]], number: int, route: str, where: str) -> int:
        """A function for the conjunction of `checks`; its index in what `build` returns."""
        self.parameters = []
        try:
            body = " and ".join(self.expression(node) for node in checks) or "True"
            shape, _ = self.shapes.setdefault(body, (len(self.shapes), len(self.parameters)))
            self.functions.append((shape, self.parameters, f"route {route}, {where}"))
        finally:
            self.parameters = None
        return len(self.functions) - 1

    def build(self) -> list[Predicate]:
        filename = f"<interlock checks: {self.label}>"
        lines = []
        for body, (shape, arity) in self.shapes.items():
            lines += [f"def shape{shape}({', '.join(f'K{i}' for i in range(arity))}):",
                      "    def check(data):",
                      f"        return {body}",
                      "    return check", ""]
        source = "\n".join(lines)
        linecache.cache[filename] = (len(source), None, [line + "\n" for line in lines], filename)
        exec(compile(source, filename, "exec"), self.names)
        factories = [self.names[f"shape{shape}"] for shape in range(len(self.shapes))]
        made = []
        for shape, constants, name in self.functions:
            function = factories[shape](*constants)
            function.__code__ = function.__code__.replace(co_name=name, co_qualname=name)
            made.append(function)
        return made

    # ---- expressions ---------------------------------------------------------------

    def constant(self, value: Any, prefix: str = "K") -> str:
        """A name for a value: a parameter of the rule's function (`add`), else a global."""
        if self.parameters is not None:
            self.parameters.append(value)
            return f"K{len(self.parameters) - 1}"
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def literal(self, value: Any) -> str:
        """A literal as source: numbers and strings written out (or, in a rule's function, its
        parameters), the rest through a name."""
        if self.parameters is not None:
            return self.constant(value)
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
            kind, literal = (lambda first, later: f"type({first}) is str"), self.literal(value)
        else:
            return None
        # The kind first, always: a value of no kind is never compared (its `==` may raise, as
        # Decimal("sNaN")'s does, or answer something that is no truth value, as an array's).
        if cmp == "!=":
            return (lambda first, later: f"(not ({kind(later, later)} and {later} == {literal}))"), False
        if cmp == "==":
            return (lambda first, later: f"({kind(first, later)} and {later} == {literal})"), True
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
        forms: dict[str, tuple[str, bool]] = {  # the method and whether it is of the case-folded text
            "startswith": ("{}.startswith({})", False),
            "endswith": ("{}.endswith({})", False),
            "equals_ignore_case": ("{}.casefold() == {}", True),
            "startswith_ignore_case": ("{}.casefold().startswith({})", True),
            "endswith_ignore_case": ("{}.casefold().endswith({})", True),
        }
        if test not in forms:  # `matches`: the glob's own function, in its closure
            return None
        text, folds = forms[test]
        literal = self.literal(value.casefold() if folds else value)
        return lambda first, later: f"(type({first}) is str and {text.format(later, literal)})"


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
