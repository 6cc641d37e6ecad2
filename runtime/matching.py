"""Matching: a compiled artifact's dispatch tables, ready to route events.

`match` is the hot path: it reads the event's values once per indexed field of its type,
looks each up (a hash, a prefix table, sorted range boundaries), and evaluates only the
remaining atoms of the rules whose anchor matched; so its cost follows the fields of the
type and the rules that really match, not the number of routes (see compiler/tables.py).
This module is free of I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .predicates import Predicate, compile_predicate, leaves, scalars, values_at

_BOOL = object()  # booleans are keyed apart: in Python, True == 1


def _key(value: Any) -> Any:
    t = type(value)
    if t is str or t is int or t is float:
        return value
    if t is bool:
        return (_BOOL, value)
    return None


def event_type_matches(pattern: str, event_type: str) -> bool:
    """`*` is one dotted segment, `**` any number of segments, including none.

    In at most len(pattern) * len(event_type) steps, whatever the `**`s: the set of
    segments of the type the pattern so far can have reached is carried along (trying
    each split at each `**` would take exponential time in their number)."""
    parts = event_type.split(".")
    reached = [0]  # after the pattern's segments so far: how many of the type's it may have matched
    for head in pattern.split("."):
        if head == "**":
            reached = list(range(reached[0], len(parts) + 1))
        else:
            reached = [i + 1 for i in reached if i < len(parts) and (head == "*" or head == parts[i])]
        if not reached:
            return False
    return reached[-1] == len(parts)


@attrs.frozen
class _Rule:
    route: int
    branch: int | None
    check: Predicate | None
    quick: Predicate | None = None  # `check` for data that is a plain dict (see `_quick`)


class _FieldIndex:
    """Every anchor on one field path of one table."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.path: list[str] = entry["path"]
        self.field: str | None = self.path[0] if len(self.path) == 1 else None  # the common, direct case
        self.eq: dict[Any, tuple[int, ...]] = {}
        for value, rule in entry["eq"]:
            key = _key(value)
            self.eq[key] = (*self.eq.get(key, ()), rule)
        by_length: dict[int, dict[str, tuple[int, ...]]] = {}
        for prefix, rule in entry["prefix"]:
            table = by_length.setdefault(len(prefix), {})
            table[prefix] = (*table.get(prefix, ()), rule)
        self.prefixes = sorted(by_length.items())
        self.bounds: list[float] = []
        self.slots: list[tuple[int, ...]] = []
        if entry["range"]:
            self._ranges(entry["range"])

    def _ranges(self, ranges: list[list[Any]]) -> None:
        # Boundaries b0 < b1 < ...; slot 2i is the open gap below bi, slot 2i+1 the point bi.
        bounds = sorted({v for low, _, high, _, _ in ranges for v in (low, high) if v is not None})
        slots: list[list[int]] = [[] for _ in range(2 * len(bounds) + 1)]
        for low, low_inclusive, high, high_inclusive, rule in ranges:
            first = 0 if low is None else 2 * bounds.index(low) + (1 if low_inclusive else 2)
            last = len(slots) - 1 if high is None else 2 * bounds.index(high) + (1 if high_inclusive else 0)
            for slot in range(first, last + 1):
                slots[slot].append(rule)
        interned: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.bounds = bounds
        self.slots = [interned.setdefault(tuple(s), tuple(s)) for s in slots]

    def lookup(self, value: Any) -> tuple[int, ...]:
        t = type(value)
        key = (_BOOL, value) if t is bool else value if (t is str or t is int or t is float) else None
        if key is None:
            return ()
        found = self.eq.get(key, ())
        if self.prefixes and type(value) is str:
            for length, table in self.prefixes:
                if length > len(value):
                    break
                hit = table.get(value[:length])
                if hit:
                    found = found + hit
        if self.bounds and (type(value) is int or type(value) is float) and value == value:
            i = bisect.bisect_left(self.bounds, value)
            slot = 2 * i + 1 if i < len(self.bounds) and self.bounds[i] == value else 2 * i
            if self.slots[slot]:
                found = found + self.slots[slot]
        return found


class _Table:
    def __init__(self, unconditional: list[tuple[int, int | None]], fields: list[_FieldIndex], scan: list[_Rule]):
        self.unconditional = unconditional
        self.fields = fields
        self.scan = scan
        self.fired: set[int] = {route for route, branch in unconditional if branch is None}
        self.chosen: dict[int, int] = {}
        for route, branch in unconditional:
            if branch is not None and self.chosen.get(route, branch + 1) > branch:
                self.chosen[route] = branch
        # Filled in by the router: the answer when nothing depends on the event's data, or
        # a function generated for this table (see `_generate`).
        self.constant: frozenset[str] | None = None
        self.fast: Callable[[Any], frozenset[str]] | None = None


_Hit = tuple[int, tuple[tuple[int, Predicate], ...]]  # see Router._generate
_MEMO = 4096  # answers a table's generated code keeps, by the mask of what fired


class _Answers:
    """A table's answer as a function of a bit mask, the state of its generated code.

    A bit per target that a conditional route of the table leads to (a route that fires sets
    the bits of its targets), and per `choose` a run of bits, one per branch in order (a branch
    that fires sets its bit; the lowest set bit of the run is the branch that wins). `resolve`
    turns a mask into the answer and remembers it, for up to _MEMO masks."""

    def __init__(self, base: frozenset[str], route_targets: list[frozenset[str]],
                 branch_targets: list[list[frozenset[str]]]) -> None:
        self.base = base  # the unconditional routes' targets, in every answer
        self.route_targets = route_targets
        self.branch_targets = branch_targets
        self.meaning: list[str | tuple[int, int]] = []  # per bit: a target, or (choose, branch)
        self.targets: dict[str, int] = {}
        self.runs: dict[int, int] = {}  # choose -> the bit of its branch 0
        self.memo: dict[int, frozenset[str]] = {}

    def route(self, route: int) -> int:
        mask = 0
        for target in self.route_targets[route]:
            if target in self.base:
                continue
            if target not in self.targets:
                self.targets[target] = 1 << len(self.meaning)
                self.meaning.append(target)
            mask |= self.targets[target]
        return mask

    def branch(self, route: int, branch: int) -> int:
        if route not in self.runs:
            self.runs[route] = len(self.meaning)
            self.meaning += [(route, b) for b in range(len(self.branch_targets[route]))]
        return 1 << (self.runs[route] + branch)

    def resolve(self, mask: int) -> frozenset[str]:
        found = set(self.base)
        decided: set[int] = set()
        rest = mask
        while rest:  # the set bits, lowest first
            bit = rest & -rest
            rest ^= bit
            what = self.meaning[bit.bit_length() - 1]
            if isinstance(what, str):
                found.add(what)
            elif what[0] not in decided:  # the first branch of its choose that fired
                decided.add(what[0])
                found |= self.branch_targets[what[0]][what[1]]
        answer = frozenset(found)
        if len(self.memo) < _MEMO:
            self.memo[mask] = answer
        return answer


def _indent(lines: list[str], width: int) -> list[str]:
    return [" " * width + line for line in lines]


class Matcher:
    """The routing decision of an artifact: `match` (the targets) and `deliveries` (the
    targets with their routes and transforms)."""

    def __init__(self, artifact: dict[str, Any]) -> None:
        dispatch = artifact["dispatch"]
        self._routes: list[dict[str, Any]] = dispatch["routes"]
        self._route_targets: list[frozenset[str]] = []
        self._branch_targets: list[list[frozenset[str]]] = []
        for route in self._routes:
            if route["kind"] == "route":
                self._route_targets.append(frozenset(d["target"] for d in route["deliveries"]))
                self._branch_targets.append([])
            else:
                self._route_targets.append(frozenset())
                self._branch_targets.append([frozenset(d["target"] for d in b["deliveries"])
                                             for b in route["branches"]])
        self._rules = [_Rule(r["route"], r["branch"], _conjunction(r["check"]), _quick(r["check"]))
                       for r in dispatch["rules"]]
        self._unconditional = [(u[0], u[1]) for u in dispatch["unconditional"]]
        tables = [_Table([(u[0], u[1]) for u in t["unconditional"]], [_FieldIndex(f) for f in t["index"]],
                         [self._rules[number] for number in t["scan"]])
                  for t in dispatch["tables"]]
        # For types no table was compiled for: each route's and branch's whole condition.
        self._conditions: list[_Rule] = []
        for number, route in enumerate(self._routes):
            if route["kind"] == "route":
                if route["when"] is not None:
                    self._conditions.append(_Rule(number, None, compile_predicate(route["when"])))
            else:
                for branch, arm in enumerate(route["branches"]):
                    if arm["when"] is not None:
                        self._conditions.append(_Rule(number, branch, compile_predicate(arm["when"])))
        for table in tables:
            self._prepare(table)
        self._tables: dict[str, _Table] = {name: tables[i] for name, i in dispatch["types"].items()}
        # The hot path's one lookup: per type, the answer itself or the function that finds it.
        self._dispatch: dict[str, frozenset[str] | Callable[[Any], frozenset[str]]] = {
            name: self._entry(table) for name, table in self._tables.items()}
        setattr(self, "match", self._fast_match())  # noqa: B010 - the instance's own hot path
        self._unknown: dict[str, _Table] = {}

    def _prepare(self, table: _Table) -> _Table:
        if not table.fields and not table.scan:
            table.constant = self._targets(table.fired, table.chosen)
        else:
            table.fast = self._generate(table)
        return table

    def _generate(self, table: _Table) -> Callable[[Any], frozenset[str]]:
        """Python source for one table's matching, compiled once at load (as Jinja does for
        templates): each field's lookup inlined, each rule's effect a constant bit mask.

        The function ORs into `m` the bits of the rules that fire (`_Answers`: a bit per
        target, and per `choose` a run of bits in branch order, whose lowest set bit is the
        branch that wins), then turns `m` into the answer with one dict lookup, so no set is
        built per event. Data that is not a plain dict takes the general path (`_fire`)."""
        answers = _Answers(self._targets(table.fired, {}), self._route_targets, self._branch_targets)
        start = 0
        for route, branch in table.chosen.items():
            start |= answers.branch(route, branch)

        def bits(rule: _Rule) -> int:
            """What the rule sets when it fires; 0 when that cannot change the answer."""
            if rule.branch is None:
                return answers.route(rule.route)
            if table.chosen.get(rule.route, rule.branch + 1) <= rule.branch:
                return 0  # an unconditional branch at or before this one always wins
            return answers.branch(rule.route, rule.branch)

        def hit(numbers: Iterable[int]) -> _Hit | None:
            """One lookup's hit: the bits of its rules without a check, and (bits, check) of the others."""
            always, checked = 0, []
            for number in numbers:
                rule = self._rules[number]
                value = bits(rule)
                check = rule.check if rule.quick is None else rule.quick
                if value and check is None:
                    always |= value
                elif value and check is not None:
                    checked.append((value, check))
            return (always, tuple(checked)) if always or checked else None

        def fire(found: Iterable[_Hit | None]) -> tuple[Callable[[_Hit], Any], list[str]]:
            """How an index stores its hits, and the code that ORs in the bits of one (`h`)."""
            if all(h is None or not h[1] for h in found):  # no check anywhere: a hit is its bits
                return (lambda h: h[0]), ["m |= h"]
            return (lambda h: h), ["u, c = h", "m |= u", "if c:", "    for b, f in c:", "        if f(data):",
                                   "            m |= b"]

        names: dict[str, Any] = {"_B": _BOOL, "values_at": values_at, "scalars": scalars, "leaves": leaves,
                                 "bisect_left": bisect.bisect_left, "SLOW": self._general(table),
                                 "MEMO": answers.memo, "RESOLVE": answers.resolve}
        lines = ["def match(data):",
                 "    if type(data) is not dict:",
                 "        return SLOW(data)",
                 f"    m = {start}"]
        for number, field in enumerate(table.fields):
            body: list[str] = []  # the tests of one value `x`, of type `t`
            eq = {key: h for key, numbers in field.eq.items() if (h := hit(numbers)) is not None}
            if eq:
                form, code = fire(eq.values())
                names[f"EQ{number}"] = {key: form(h) for key, h in eq.items()}
                kinds = [test for test, present in (
                    ("t is str", any(type(key) is str for key in eq)),
                    ("t is int or t is float", any(type(key) is int or type(key) is float for key in eq)))
                    if present]
                if kinds:  # the hash lookup, inlined, for the kinds of values the index holds
                    body += [f"if {' or '.join(kinds)}:",
                             f"    h = EQ{number}.get(x)",
                             "    if h is not None:",
                             *_indent(code, 8)]
                if any(type(key) is tuple for key in eq):  # booleans, keyed apart from 0 and 1
                    body += [f"{'elif' if kinds else 'if'} t is bool:",
                             f"    h = EQ{number}.get((_B, x))",
                             "    if h is not None:",
                             *_indent(code, 8)]
            prefixes: list[str] = []
            for position, (length, by_prefix) in enumerate(field.prefixes):
                found = {p: h for p, numbers in by_prefix.items() if (h := hit(numbers)) is not None}
                if found:  # one lookup per distinct prefix length (a shorter string is no key)
                    form, code = fire(found.values())
                    names[f"PRE{number}_{position}"] = {p: form(h) for p, h in found.items()}
                    prefixes += [f"    h = PRE{number}_{position}.get(x[:{length}])",
                                 "    if h is not None:",
                                 *_indent(code, 8)]
            if prefixes:
                body += ["if t is str:", *prefixes]
            slots = [hit(slot) for slot in field.slots]
            if any(h is not None for h in slots):  # sorted boundaries; NaN is in no range
                form, code = fire(slots)
                names[f"BOUNDS{number}"] = field.bounds
                names[f"SLOTS{number}"] = [None if h is None else form(h) for h in slots]
                body += ["if (t is int or t is float) and x == x:",
                         f"    i = bisect_left(BOUNDS{number}, x)",
                         f"    h = SLOTS{number}[2 * i + 1 if i < {len(field.bounds)} and BOUNDS{number}[i] == x"
                         " else 2 * i]",
                         "    if h is not None:",
                         *_indent(code, 8)]
            if not body:
                continue
            if field.field is not None:  # the common case: a top-level field, a value or a list of them
                lines += [f"    x = data.get({field.field!r})",
                          "    if x is not None:",
                          "        t = type(x)",
                          "        if t is list:",
                          "            for x in leaves(x):",
                          "                t = type(x)",
                          *_indent(body, 16),
                          "        else:",
                          *_indent(body, 12)]
            else:
                names[f"PATH{number}"] = field.path
                lines += [f"    for x in scalars(values_at(data, PATH{number})):",
                          "        t = type(x)",
                          *_indent(body, 8)]
        for number, rule in enumerate(table.scan):
            value = bits(rule)
            check = rule.check if rule.quick is None else rule.quick
            if value and check is None:
                lines.append(f"    m |= {value}")
            elif value:
                names[f"SCAN{number}"] = check
                lines += [f"    if SCAN{number}(data):",
                          f"        m |= {value}"]
        names["START"] = answers.resolve(start)  # after every bit is given out
        lines += ["    if not m:" if not start else f"    if m == {start}:",
                  "        return START",
                  "    try:",
                  "        return MEMO[m]",
                  "    except KeyError:",
                  "        return RESOLVE(m)"]
        exec(compile("\n".join(lines), f"<interlock table {id(table):x}>", "exec"), names)
        return names["match"]  # type: ignore[no-any-return]

    def _general(self, table: _Table) -> Callable[[Any], frozenset[str]]:
        return lambda data: self._targets(*self._fire(table, data))

    def _targets(self, fired: set[int], chosen: dict[int, int]) -> frozenset[str]:
        targets: set[str] = set()
        for route in fired:
            targets |= self._route_targets[route]
        for route, branch in chosen.items():
            targets |= self._branch_targets[route][branch]
        return frozenset(targets)

    def _table(self, event_type: str) -> _Table:
        table = self._tables.get(event_type) or self._unknown.get(event_type)
        if table is None:
            # A type no table was compiled for: the routes whose globs match it, scanned.
            routes = {i for i, r in enumerate(self._routes) if any(event_type_matches(p, event_type) for p in r["on"])}
            table = self._prepare(_Table([u for u in self._unconditional if u[0] in routes], [],
                                         [rule for rule in self._conditions if rule.route in routes]))
            if len(self._unknown) > 10_000:
                self._unknown.clear()
            self._unknown[event_type] = table
        return table

    def _entry(self, table: _Table) -> frozenset[str] | Callable[[Any], frozenset[str]]:
        if table.constant is not None:
            return table.constant
        if table.fast is not None:
            return table.fast
        return self._general(table)

    def _fast_match(self) -> Callable[[str, Any], frozenset[str]]:
        """`match` as a closure over the dispatch dict: the same steps as the method below,
        without its attribute lookups (a tenth of the time of a match on a small project)."""
        get = self._dispatch.get
        entry_for = self._entry
        table_for = self._table

        def match(event_type: str, data: Any) -> frozenset[str]:
            entry = get(event_type)
            if entry is None:
                entry = entry_for(table_for(event_type))
            if type(entry) is frozenset:
                return entry
            return entry(data)  # type: ignore[operator]

        match.__doc__ = Matcher.match.__doc__
        return match

    def match(self, event_type: str, data: Any) -> frozenset[str]:
        """The set of targets the event is routed to. No handler runs, nothing is stored."""
        entry = self._dispatch.get(event_type)
        if entry is None:
            entry = self._entry(self._table(event_type))
        if type(entry) is frozenset:
            return entry
        return entry(data)  # type: ignore[operator]

    def _fire(self, table: _Table, data: Any) -> tuple[set[int], dict[int, int]]:
        """The routes that fire, and for each choose that fires, the branch that wins."""
        fired = set(table.fired)
        chosen = dict(table.chosen)
        rules = self._rules
        direct = type(data) is dict
        for field in table.fields:
            if field.field is not None and direct:
                value = data.get(field.field)
                if value is None:
                    continue
                values = scalars([value]) if type(value) is list else (value,)
            else:
                values = scalars(values_at(data, field.path))
            for value in values:
                for number in field.lookup(value):
                    rule = rules[number]
                    if rule.check is None or rule.check(data):
                        if rule.branch is None:
                            fired.add(rule.route)
                        elif chosen.get(rule.route, rule.branch + 1) > rule.branch:
                            chosen[rule.route] = rule.branch
        for rule in table.scan:
            if rule.check is None or rule.check(data):
                if rule.branch is None:
                    fired.add(rule.route)
                elif chosen.get(rule.route, rule.branch + 1) > rule.branch:
                    chosen[rule.route] = rule.branch
        return fired, chosen

    def deliveries(self, event_type: str, data: Any) -> dict[str, list[tuple[str, dict[str, Any] | None]]]:
        """Per target the event reaches: the routes that lead there, in declaration order, each
        with its transform (None: the event's data as it is)."""
        table = self._tables.get(event_type) or self._table(event_type)
        fired, chosen = self._fire(table, data) if table.constant is None else (table.fired, table.chosen)
        out: dict[str, list[tuple[str, dict[str, Any] | None]]] = {}
        for number in sorted({*fired, *chosen}):
            route = self._routes[number]
            arm = route if number in fired else route["branches"][chosen[number]]
            for delivery in arm["deliveries"]:
                out.setdefault(delivery["target"], []).append((route["name"], delivery["transform"]))
        return out


def _conjunction(checks: list[dict[str, Any]]) -> Predicate | None:
    if not checks:
        return None
    return _every([compile_predicate(c) for c in checks])


def _quick(checks: list[dict[str, Any]]) -> Predicate | None:
    """`_conjunction` for data that is a plain dict (all the generated code sees): an `==` or
    `in` on a top-level field looks the value's key up in a set, as the eq index does."""
    if not checks:
        return None
    return _every([_membership(c) or compile_predicate(c) for c in checks])


def _every(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def every(data: Any) -> bool:
        for part in parts:  # noqa: SIM110 - without the generator of all(), on the hot path
            if not part(data):
                return False
        return True

    return every


def _membership(node: dict[str, Any]) -> Predicate | None:
    """`field == v` and `field in [...]` (top-level field, data a plain dict), or None."""
    if node["op"] == "in" and not node["negated"]:
        literals = node["values"]
    elif node["op"] == "cmp" and node["cmp"] == "==":
        literals = [node["value"]]
    else:
        return None
    if len(node["path"]) != 1 or node.get("timestamp"):  # instants compare by value, not by text
        return None
    # A value of another kind, NaN, null, a list or an object is equal to nothing.
    keys = frozenset(key for v in literals if (key := _key(v)) is not None and v == v)
    field = node["path"][0]

    def membership(data: dict[str, Any]) -> bool:
        x: Any = data.get(field)
        t = type(x)
        if t is str or t is int or t is float:
            return x in keys
        if t is bool:
            return (_BOOL, x) in keys
        if isinstance(x, list):  # any element (a list at the end of the path is its values)
            for y in leaves(x):
                if _key(y) in keys:
                    return True
        return False

    return membership
