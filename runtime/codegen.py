"""The checks of rules as Python source: what a person writes by hand, compiled once at load.

A rule's remaining tests (those its index lookup did not answer) become one function of the
event's data, a plain `dict` (the generated matching code and `_fire` call it only on one):

    def r12_big_orders(data):
        return ((v := data.get('amount')) is not None and ((type(v) is int or type(v) is float)
                and 100 <= v <= 400 if type(v) is not list else any(... for y in leaves(v) ...)))  # ...

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
        name = f"r{number}_{_NAME.sub('_', route)}"[:80]
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

    def expression(self, node: dict[str, Any]) -> str:
        op = node["op"]
        if op in ("and", "or"):
            return "(" + f" {op} ".join(self.expression(a) for a in node["args"]) + ")"
        if op == "not":
            return f"(not {self.expression(node['arg'])})"
        path = node["path"]
        if op in ("exists", "missing"):
            present = (f"(data.get({path[0]!r}) is not None)" if len(path) == 1
                       else f"bool(values_at(data, {self.constant(path)}))")
            return present if op == "exists" else f"(not {present})"
        test = None if node.get("timestamp") else self.value_test(node)
        if test is None:
            return self.closure(node)
        if len(path) == 1:
            # One value, or a list whose elements (lists within entered, nulls left out) are tried.
            return (f"((v := data.get({path[0]!r})) is not None and ({test('v')} if not isinstance(v, list) "
                    f"else any({test('y')} for y in leaves(v) if y is not None)))")
        return f"any({test('y')} for y in scalars(values_at(data, {self.constant(path)})))"

    def value_test(self, node: dict[str, Any]) -> Callable[[str], str] | None:
        """The test of one present value (not a list) as a function of its variable's name, or
        None where the node is left to its closure."""
        op = node["op"]
        if op == "cmp":
            return self.comparison(node["cmp"], node["value"])
        if op == "in":
            member = self.membership(node["values"])
            return (lambda v: f"(not {member(v)})") if node["negated"] else member
        if op == "range":
            low, high = node["low"], node["high"]
            if not all(type(b) in (int, float) and b == b for b in (low, high)):
                return None
            bounds = self.literal(low), self.literal(high)
            return lambda v: f"({_number(v)} and {bounds[0]} <= {v} <= {bounds[1]})"
        if op == "str":
            return self.string_test(node["test"], node["value"])
        return None

    def comparison(self, cmp: str, value: Any) -> Callable[[str], str] | None:
        if value is None:  # `== null` and the orderings are false; `!= null` holds for any value
            return (lambda v: "True") if cmp == "!=" else (lambda v: "False")
        kind: Callable[[str], str]
        if type(value) is bool:
            kind, literal = (lambda v: f"type({v}) is bool"), repr(value)
        elif type(value) in (int, float):
            if value != value:  # NaN equals nothing and orders with nothing
                return (lambda v: "True") if cmp == "!=" else (lambda v: "False")
            kind, literal = _number, self.literal(value)
        elif type(value) is str:
            kind, literal = (lambda v: f"type({v}) is str"), repr(value)
        else:
            return None
        if cmp == "!=":
            return lambda v: f"(not ({kind(v)} and {v} == {literal}))"
        return lambda v: f"({kind(v)} and {v} {cmp} {literal})"

    def membership(self, values: list[Any]) -> Callable[[str], str]:
        keys = frozenset((_BOOL, v) if type(v) is bool else v for v in values
                         if type(v) in (str, int, float, bool) and v == v)
        if not keys:
            return lambda v: "False"
        name = self.constant(keys, "S")
        scalar_keys = any(type(k) is not tuple for k in keys)
        bool_keys = any(type(k) is tuple for k in keys)

        def test(v: str) -> str:
            parts = []
            if scalar_keys:
                parts.append(f"((type({v}) is str or type({v}) is int or type({v}) is float) and {v} in {name})")
            if bool_keys:
                parts.append(f"(type({v}) is bool and (_B, {v}) in {name})")
            return "(" + " or ".join(parts) + ")"

        return test

    def string_test(self, test: str, value: Any) -> Callable[[str], str] | None:
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
        return lambda v: f"(type({v}) is str and {form(v)})"


def _number(v: str) -> str:
    return f"(type({v}) is int or type({v}) is float)"
