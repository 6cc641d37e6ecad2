"""The reference interpreter: the matching semantics of the language, read straight off the AST.

Simple on purpose. It walks every route and every predicate for every event, and each
rule of "Matching semantics" in the language brief is one small function here. The
compiled dispatch tables must agree with it on every event (a property test checks
this); it is also what `interlock test` uses to say what a `test` block expects.

Semantics, in one place:
- A path is followed through objects; a list met on the way is entered, and the path
  goes on in every element ("any element matches"). A missing field or `null` gives no
  value. Every predicate over no value is false, except `missing`.
- A list at the end of a path is a set of values for the scalar tests (`==`, `<`, `in`,
  `startswith`, ...: true when one element passes), and a collection for `contains`
  (membership), `exists` / `missing` (an empty list exists).
- Numbers compare by value, exactly, whatever their size (`5 == 5.0`, `2**53 + 1 != 2.0**53`,
  `10**400 > 1e308`); booleans are not numbers; a string never equals
  a number, and ordering between different kinds is false (`!=` between kinds is true).
- `not` is plain negation.
- `is null` is about a present `null` (a missing field is not one); `any PATH { c }` holds
  when one object among the values at PATH (lists entered) satisfies `c`, read from it.
- `matches regex` is a whole-string RE2 match; the `_ignore_case` tests compare case-folded
  strings (`str.casefold`).
- A timestamp comparison (`==`, `!=`, `<`, `<=`, `>`, `>=` with a string, `in` / `not in`
  with strings, on a path declared `timestamp` or `list<timestamp>` in the closed schema of
  one of the event types the route's `on` covers: `project_timestamp_paths`) compares instants: the
  value and the literal are read as ISO 8601 (the rule of E0206; a final `Z` or an offset,
  none meaning UTC), so `"2024-05-02T11:14:00+02:00" == "2024-05-02T09:14:00Z"`. A value that
  is no timestamp string is of the wrong kind: `==`, the orderings and `in` are false on it,
  `!=` and `not in` true.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from interlock.dsl import Project, ast
from interlock.dsl.regex import compile_regex

Stamps = Collection[tuple[str, ...]]  # the field paths whose comparisons are timestamp comparisons


@functools.lru_cache(maxsize=1 << 16)
def event_type_matches(pattern: str, event_type: str) -> bool:
    """`*` is one dotted segment, `**` any number of segments, including none.

    Cached: the passes ask it for every route and every declared type, and a project has
    few distinct patterns and types."""
    return _segments_match(tuple(pattern.split(".")), tuple(event_type.split(".")))


def _segments_match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """The definition as a table, filled from the end: whether pattern[p:] matches parts[t:]
    for every p and t, one case per kind of segment, so len(pattern) * len(parts) steps
    however many `**` there are."""
    following = [t == len(parts) for t in range(len(parts) + 1)]  # the empty rest of the pattern
    for head in reversed(pattern):
        row = [False] * (len(parts) + 1)
        for t in range(len(parts), -1, -1):
            if head == "**":  # no segment, or one and still `**`
                row[t] = following[t] or (t < len(parts) and row[t + 1])
            else:
                row[t] = t < len(parts) and head in ("*", parts[t]) and following[t + 1]
        following = row
    return following[0]


def glob_matches(pattern: str, text: str) -> bool:
    """Shell glob over the whole string: `*` any run, `?` one character, `\\x` a literal x.

    The classic two-pointer algorithm: linear backtracking to the last star only, so no
    pattern can take more than len(pattern) * len(text) steps.
    """
    tokens: list[tuple[str, str]] = []  # ("*", ""), ("?", ""), ("c", char)
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            tokens.append(("c", pattern[i + 1]))
            i += 2
            continue
        tokens.append((ch, "") if ch in "*?" else ("c", ch))
        i += 1
    p = t = 0
    star = -1
    mark = 0
    while t < len(text):
        if p < len(tokens) and (tokens[p][0] == "?" or (tokens[p][0] == "c" and tokens[p][1] == text[t])):
            p += 1
            t += 1
        elif p < len(tokens) and tokens[p][0] == "*":
            star, mark = p, t
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(tokens) and tokens[p][0] == "*":
        p += 1
    return p == len(tokens)


def _elements(value: list[Any]) -> Iterator[Any]:
    """A list's elements, those of the lists within it in their place (any depth: a stack of
    iterators, not recursion, so a list nested 100,000 deep is no `RecursionError`)."""
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


def values_at(data: Any, parts: tuple[str, ...]) -> list[Any]:
    """Every value the path reaches (lists on the way entered, lists within lists too),
    `null` left out."""
    current = [data]
    for part in parts:
        following = []
        for value in current:
            for item in _elements(value) if isinstance(value, list) else (value,):
                if isinstance(item, dict) and item.get(part) is not None:
                    following.append(item[part])
        current = following
    return current


def null_at(data: Any, parts: tuple[str, ...]) -> bool:
    """Whether the path reaches a `null` that is present: its last field is there and `null`,
    or is a list with a `null` among its elements (a missing field is no `null`)."""
    *way, last = parts
    for value in values_at(data, tuple(way)):
        for item in _elements(value) if isinstance(value, list) else (value,):
            if isinstance(item, dict) and last in item:
                found = item[last]
                if found is None or (isinstance(found, list) and any(e is None for e in _elements(found))):
                    return True
    return False


def elements_at(data: Any, parts: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The objects `any PATH { ... }` tries: the values at the path, lists entered (at any
    depth); values that are not objects are no elements."""
    for value in values_at(data, parts):
        for item in _elements(value) if isinstance(value, list) else (value,):
            if isinstance(item, dict):
                yield item


def within(stamps: Stamps, parts: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    """The timestamp paths below `parts`, from there: those of an `any PATH { ... }`'s condition."""
    n = len(parts)
    return frozenset(p[n:] for p in stamps if len(p) > n and p[:n] == parts)


def _scalars(values: Iterable[Any]) -> Iterator[Any]:
    """The values, with a list at the end of the path opened into its elements."""
    for value in values:
        if isinstance(value, list):
            yield from (v for v in _elements(value) if v is not None)
        else:
            yield value


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _kind(value: Any) -> str:
    """The kinds are JSON's, by exact type: a subclass of `str` or `int` (which only a direct
    `match` of Python objects can pass; `publish` refuses it) is of no kind, as in the runtime."""
    if type(value) is bool:
        return "bool"
    if _is_number(value):
        return "number"
    if type(value) is str:
        return "string"
    return "other"


def equal(a: Any, b: Any) -> bool:
    """Equality across kinds: numbers by value, a string never equals a number."""
    kind = _kind(a)
    if kind != _kind(b) or kind == "other":
        return False
    return bool(a == b)


def compare(value: Any, op: str, literal: Any) -> bool:
    if op == "==":
        return equal(value, literal)
    if op == "!=":
        return not equal(value, literal)
    kind = _kind(value)
    if kind != _kind(literal) or kind == "other":
        return False
    if kind == "number" and (value != value or literal != literal):  # NaN; any integer compares exactly
        return False
    if op == "<":
        return bool(value < literal)
    if op == "<=":
        return bool(value <= literal)
    if op == ">":
        return bool(value > literal)
    return bool(value >= literal)  # ">="


# ---- timestamps ---------------------------------------------------------------


# RFC 3339, with a space allowed for the `T`, the seconds optional, and a date alone: what
# JSON events carry. (`datetime.fromisoformat` alone takes far more: any character between
# date and time, week dates, and `2024-05-02+02:00` read as two o'clock.)
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?"
                        r"([Zz]|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?", re.ASCII)


def instant(value: Any) -> datetime.datetime | None:
    """The instant a timestamp string names, or None for a value that is not one (the rule of
    E0206): a date, then optionally a time after `T` or a space, then optionally `Z` or an
    offset; without an offset, UTC; a date alone is its midnight."""
    if type(value) is not str:
        return None
    found = _TIMESTAMP.fullmatch(value)
    if found is None:
        return None
    date, time, offset = found.groups()
    zone = "+00:00" if offset is None or offset in "Zz" else offset
    try:
        return datetime.datetime.fromisoformat(f"{date}T{time or '00:00'}{zone}")
    except ValueError:  # a month 13, a 25th hour
        return None


def _schema_timestamps(schema: ast.ObjectType) -> set[tuple[str, ...]]:
    """The paths of a schema that end at a `timestamp` or a list of them, through nested
    objects and the items of lists of objects."""
    found: set[tuple[str, ...]] = set()
    stack: list[tuple[tuple[str, ...], ast.ObjectType]] = [((), schema)]
    while stack:
        prefix, node = stack.pop()
        for field in node.fields:
            path, kind = (*prefix, field.name.text), field.type
            while isinstance(kind, ast.ListType):
                kind = kind.item
            if isinstance(kind, ast.ObjectType):
                stack.append((path, kind))
            elif kind.name == "timestamp":
                found.add(path)
    return found


def _stamped_events(events: Mapping[str, ast.EventDecl]) -> dict[str, set[tuple[str, ...]]]:
    """The closed event types that have timestamp fields, with their paths."""
    found = {}
    for name, decl in events.items():
        if decl.schema is not None and (paths := _schema_timestamps(decl.schema)):
            found[name] = paths
    return found


def _covered(stamped: dict[str, set[tuple[str, ...]]], texts: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    globs = [p for p in texts if "*" in p]
    for text in texts:  # an exact type is looked up, not matched against every event
        if "*" not in text:
            found |= stamped.get(text, set())
    if globs:
        for name, paths in stamped.items():
            if any(event_type_matches(p, name) for p in globs):
                found |= paths
    return frozenset(found)


def project_timestamp_paths(project: Project) -> dict[str, frozenset[tuple[str, ...]]]:
    """By route and choose name (for `route`), the field paths that are `timestamp` (or
    `list<timestamp>`, or such a field of the objects of a list) in the closed schema of at
    least one declared event type that its `on` covers."""
    stamped = _stamped_events(project.events)
    decls: list[ast.RouteDecl | ast.ChooseDecl] = [*project.routes.values(), *project.chooses.values()]
    if not stamped:
        return {d.name.text: frozenset() for d in decls}
    known: dict[tuple[str, ...], frozenset[tuple[str, ...]]] = {}  # by the texts of `on`: routes share them
    out = {}
    for d in decls:
        texts = tuple(p.text for p in d.on)
        found = known.get(texts)
        if found is None:
            found = known[texts] = _covered(stamped, texts)
        out[d.name.text] = found
    return out


def is_timestamp_comparison(expr: ast.Expr, stamps: Stamps) -> bool:
    """Whether `expr` compares instants: `==` ... `>=` with a string, or `in` / `not in` whose
    items are strings (`null` items aside), on a path of `stamps` (see `project_timestamp_paths`).
    The compiler marks these in the artifact (`"timestamp": true`) by this same rule."""
    if isinstance(expr, ast.Compare):
        return isinstance(expr.value.value, str) and expr.path.parts in stamps
    if isinstance(expr, ast.InList):
        return expr.path.parts in stamps and all(v.value is None or isinstance(v.value, str) for v in expr.values)
    return False


def compare_instants(value: Any, op: str, literal: Any) -> bool:
    """A timestamp comparison of one value: a value (or a literal) that is no timestamp is of
    the wrong kind, so only `!=` holds for it."""
    moment, bound = instant(value), instant(literal)
    if moment is None or bound is None:
        return op == "!="
    if op == "==":
        return moment == bound
    if op == "!=":
        return moment != bound
    if op == "<":
        return moment < bound
    if op == "<=":
        return moment <= bound
    if op == ">":
        return moment > bound
    return moment >= bound  # ">="


def _instant_in(value: Any, literals: Iterable[Any]) -> bool:
    moment = instant(value)
    return moment is not None and any(moment == bound for bound in map(instant, literals) if bound is not None)


def _in_cidr(value: Any, network: str) -> bool:
    if type(value) is not str:
        return False
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network)
    except ValueError:
        return False


def _string_test(value: Any, op: str, literal: str) -> bool:
    if type(value) is not str:
        return False
    if op == "startswith":
        return value.startswith(literal)
    if op == "endswith":
        return value.endswith(literal)
    if op == "matches":
        return glob_matches(literal, value)
    if op == "startswith_ignore_case":
        return value.casefold().startswith(literal.casefold())
    if op == "endswith_ignore_case":
        return value.casefold().endswith(literal.casefold())
    return value.casefold() == literal.casefold()  # "equals_ignore_case"


_regex = functools.lru_cache(maxsize=1024)(compile_regex)


def regex_matches(pattern: str, value: Any) -> bool:
    """The whole string matches the RE2 pattern; a value that is not text (a string with a
    lone surrogate included) does not."""
    if type(value) is not str:
        return False
    try:
        return _regex(pattern).fullmatch(value) is not None
    except UnicodeEncodeError:
        return False


def _contains(value: Any, literal: Any) -> bool:
    if isinstance(value, list):
        return any(equal(item, literal) for item in _elements(value))
    if type(value) is str and type(literal) is str:
        return literal in value
    return False


def evaluate(expr: ast.Expr, data: Any, stamps: Stamps = frozenset()) -> bool:
    """Whether the predicate holds for an event's data; comparisons on the paths of `stamps`
    are timestamp comparisons (`is_timestamp_comparison`)."""
    if isinstance(expr, ast.And):
        return all(evaluate(e, data, stamps) for e in expr.operands)
    if isinstance(expr, ast.Or):
        return any(evaluate(e, data, stamps) for e in expr.operands)
    if isinstance(expr, ast.Not):
        return not evaluate(expr.operand, data, stamps)
    if isinstance(expr, ast.AnyElement):
        inner = within(stamps, expr.path.parts)
        return any(evaluate(expr.condition, e, inner) for e in elements_at(data, expr.path.parts))
    if isinstance(expr, ast.IsNull):
        return null_at(data, expr.path.parts)
    found = values_at(data, expr.path.parts)
    if isinstance(expr, ast.Exists):
        return bool(found)
    if isinstance(expr, ast.Missing):
        return not found
    if isinstance(expr, ast.Contains):
        return any(_contains(v, expr.value.value) for v in found)
    scalars = list(_scalars(found))
    if isinstance(expr, ast.Compare):
        if stamps and is_timestamp_comparison(expr, stamps):
            return any(compare_instants(v, expr.op, expr.value.value) for v in scalars)
        return any(compare(v, expr.op, expr.value.value) for v in scalars)
    if isinstance(expr, ast.InList):
        literals = [lit.value for lit in expr.values]
        if stamps and is_timestamp_comparison(expr, stamps):
            return any(_instant_in(v, literals) != expr.negated for v in scalars)
        if expr.negated:
            return any(not any(equal(v, lit) for lit in literals) for v in scalars)
        return any(equal(v, lit) for v in scalars for lit in literals)
    if isinstance(expr, ast.InRange):
        low, high = expr.low.value, expr.high.value
        return any(compare(v, ">=", low) and compare(v, "<=", high) for v in scalars)
    if isinstance(expr, ast.InCidr):
        return any(_in_cidr(v, expr.cidr) for v in scalars)
    if isinstance(expr, ast.StringTest):
        literal = expr.value.value
        assert isinstance(literal, str)
        return any(_string_test(v, expr.op, literal) for v in scalars)
    if isinstance(expr, ast.RegexTest):
        pattern = expr.value.value
        assert isinstance(pattern, str)
        return any(regex_matches(pattern, v) for v in scalars)
    raise TypeError(f"not a predicate: {expr!r}")  # pragma: no cover - the AST is closed


def _on(patterns: Iterable[ast.EventPattern], event_type: str) -> bool:
    return any(event_type_matches(p.text, event_type) for p in patterns)


def deliveries(
    routes: Iterable[ast.RouteDecl], chooses: Iterable[ast.ChooseDecl], event_type: str, data: Any,
    stamps: Mapping[str, Stamps] | None = None,
) -> dict[str, list[tuple[str, ast.Delivery]]]:
    """Per target the event reaches, the deliveries that lead there with the name of their
    route or choose: every matching route, and for each matching `choose` its first branch
    whose `when` holds; routes first, then chooses, each in the order given (the order of the
    compiled artifact, whose first delivery to a target is the one the runtime uses).

    `stamps` gives, by route and choose name, the paths of their timestamp comparisons
    (`project_timestamp_paths`); without it no comparison is one (a project without
    closed `timestamp` fields)."""
    stamps = stamps or {}
    found: dict[str, list[tuple[str, ast.Delivery]]] = {}
    for decl in routes:
        if _on(decl.on, event_type) and (
                decl.when is None or evaluate(decl.when, data, stamps.get(decl.name.text, frozenset()))):
            for delivery in decl.to:
                found.setdefault(delivery.target.text, []).append((decl.name.text, delivery))
    for choose in chooses:
        if not _on(choose.on, event_type):
            continue
        paths = stamps.get(choose.name.text, frozenset())
        for branch in choose.branches:
            if branch.when is None or evaluate(branch.when, data, paths):
                for delivery in branch.to:
                    found.setdefault(delivery.target.text, []).append((choose.name.text, delivery))
                break
    return found


def route(
    routes: Iterable[ast.RouteDecl], chooses: Iterable[ast.ChooseDecl], event_type: str, data: Any,
    stamps: Mapping[str, Stamps] | None = None,
) -> set[str]:
    """The set of targets an event reaches: every matching route, and for each matching
    `choose` the targets of its first branch whose `when` holds (see `deliveries`)."""
    return set(deliveries(routes, chooses, event_type, data, stamps))
