"""Matching: a compiled artifact's dispatch tables, ready to route events.

`match` is the hot path: it reads the event's values once per indexed field of its type,
looks each up (a hash, a prefix table, sorted range boundaries), and evaluates only the
remaining atoms of the rules whose anchor matched; so its cost follows the fields of the
type and the rules that really match, not the number of routes (see compiler/tables.py).
This module is free of I/O.
"""

from __future__ import annotations

import bisect
import json
import linecache
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .bitmap import MAX_RULES, Atom, anchor_atom, check_atom, fire_source
from .codegen import RuleSource, anchor_node
from .predicates import Predicate, compile_predicate, leaves, scalars, values_at
from .ranges import RangeIndex

_BOOL = object()  # booleans are keyed apart: in Python, True == 1


def _key(value: Any) -> Any:
    t = type(value)
    if t is str or t is int or t is float:
        return value
    if t is bool:
        return (_BOOL, value)
    return None


def event_type_matches(pattern: str, event_type: str) -> bool:
    """`*` is one dotted segment, `**` any number of segments, including none."""
    return segments_match(pattern.split("."), event_type.split("."))


def segments_match(pattern: list[str], parts: list[str]) -> bool:
    """The two-pointer algorithm of shell globs, over segments (`**` the star, `*` one
    segment): on a mismatch, only the last `**` seen takes one more segment, so at most
    len(pattern) * len(parts) steps, however many `**` there are."""
    p = t = 0
    star = mark = -1
    while t < len(parts):
        if p < len(pattern) and pattern[p] == "**":
            star, mark = p, t
            p += 1
        elif p < len(pattern) and (pattern[p] == "*" or pattern[p] == parts[t]):
            p += 1
            t += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "**":
        p += 1
    return p == len(pattern)


@attrs.define
class _Rule:
    number: int
    route: int
    branch: int | None
    tests: list[dict[str, Any]]  # all of them hold when the rule does (none: it always holds)
    # `check` as generated code, for data that is a plain dict (codegen.py); made when a table
    # matched by its anchors first needs it (`Matcher._quick`), None until then.
    quick: Predicate | None = None
    _check: Predicate | None = attrs.field(default=None, init=False)

    @property
    def check(self) -> Predicate | None:
        """The tests as one predicate, None when there are none; compiled when first asked
        for, as only data that is not a plain dict, and a few paths, need it."""
        if self._check is None and self.tests:
            self._check = _conjunction(self.tests)
        return self._check


def _by_length(prefixes: Iterable[list[Any]]) -> list[tuple[int, dict[str, tuple[int, ...]]]]:
    """Prefix anchors by length, shortest first: one lookup per distinct length."""
    by_length: dict[int, dict[str, list[int]]] = {}
    for prefix, rule in prefixes:
        by_length.setdefault(len(prefix), {}).setdefault(prefix, []).append(rule)
    return sorted((length, {p: tuple(rules) for p, rules in table.items()}) for length, table in by_length.items())


class _FieldIndex:
    """Every anchor on one field path of one table."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.path: list[str] = entry["path"]
        self.field: str | None = self.path[0] if len(self.path) == 1 else None  # the common, direct case
        eq: dict[Any, list[int]] = {}  # (lists, then tuples: a tuple grown by one per rule is quadratic)
        for value, rule in entry["eq"]:
            eq.setdefault(_key(value), []).append(rule)
        self.eq: dict[Any, tuple[int, ...]] = {key: tuple(rules) for key, rules in eq.items()}
        self.prefixes = _by_length(entry["prefix"])
        self.folded = _by_length(entry.get("folded", ()))  # prefixes of the case-folded value
        self.ranges = RangeIndex(entry["range"]) if entry["range"] else None

    def lookup(self, value: Any) -> tuple[int, ...]:
        t = type(value)
        key = (_BOOL, value) if t is bool else value if (t is str or t is int or t is float) else None
        if key is None:
            return ()
        found = self.eq.get(key, ())
        if type(value) is str:
            for prefixes, text in ((self.prefixes, value), (self.folded, value.casefold() if self.folded else "")):
                for length, table in prefixes:
                    if length > len(text):
                        break
                    hit = table.get(text[:length])
                    if hit:
                        found = found + hit
        if self.ranges is not None:
            slot = self.ranges.slot(value)
            if slot is not None:
                found = found + self.ranges.rules_at(slot)
        return found


class _Table:
    def __init__(self, unconditional: list[tuple[int, int | None]], fields: list[_FieldIndex], scan: list[_Rule],
                 rule_ids: list[int] | None = None):
        self.unconditional = unconditional
        self.fields = fields
        self.scan = scan
        self.rule_ids = rule_ids  # the rules of a compiled table, in order (None: a table of whole conditions)
        self.fire: Callable[[Any], int] | None = None  # the bitmap code: the mask of the rules that hold
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
MAX_UNKNOWN = 4096  # event types without a compiled table whose table is remembered
SMALL_RULES = 2  # a table of this many rules or fewer tests each in turn; more, as bit masks (bitmap.py)


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
        # Per rule, for the bitmap tables: the tests an index answers (`atoms`), and the others
        # (`residual`), whose generated code (`rest`) is compiled with the first table that needs it.
        self._atoms: list[list[Atom]] = []
        self._residual: list[list[dict[str, Any]]] = []
        for rule in dispatch["rules"]:
            atoms, residual = _split(rule)
            self._atoms.append(atoms)
            self._residual.append(residual)
        self._rest: list[Predicate | None] = [None] * len(self._residual)
        self._rules = [_Rule(number, r["route"], r["branch"], r["check"]) for number, r in enumerate(dispatch["rules"])]
        self._rule_json: list[dict[str, Any]] = dispatch["rules"]
        self._unconditional = [(u[0], u[1]) for u in dispatch["unconditional"]]
        tables = [_Table([(u[0], u[1]) for u in t["unconditional"]], [_FieldIndex(f) for f in t["index"]],
                         [self._rules[number] for number in t["scan"]], _rule_ids(t))
                  for t in dispatch["tables"]]
        # For types no table was compiled for, which only routes with a glob in `on` can take:
        # each such route's and branch's whole condition.
        self._conditions: list[_Rule] = []
        for number, route in enumerate(self._routes):
            if not any("*" in pattern for pattern in route["on"]):
                continue
            if route["kind"] == "route":
                if route["when"] is not None:
                    self._conditions.append(_Rule(-1, number, None, [route["when"]]))
            else:
                for branch, arm in enumerate(route["branches"]):
                    if arm["when"] is not None:
                        self._conditions.append(_Rule(-1, number, branch, [arm["when"]]))
        # (the residual tests of every table of bit masks in one source: rules alike share code)
        self._compile_residuals([n for t in tables if t.rule_ids and SMALL_RULES < len(t.rule_ids) <= MAX_RULES
                                 for n in t.rule_ids])
        for table in tables:
            self._prepare(table)
        self._tables: dict[str, _Table] = {name: tables[i] for name, i in dispatch["types"].items()}
        # The hot path's one lookup: per type, the function that finds the answer.
        self._dispatch: dict[str, Callable[[Any], frozenset[str]]] = {
            name: self._entry(table) for name, table in self._tables.items()}
        setattr(self, "match", self._fast_match())  # noqa: B010 - the instance's own hot path
        self._unknown: dict[str, _Table] = {}  # by type, oldest first (see `_table`)
        self._by_routes: dict[frozenset[int], _Table] = {}
        self._globs = [(pattern.split("."), number) for number, route in enumerate(self._routes)
                       for pattern in route["on"] if "*" in pattern]

    def _quick(self, table: _Table) -> None:
        """The generated code of the checks of a table's rules that have none yet (codegen.py),
        compiled together: only tables matched by their anchors use it."""
        # (A table of whole conditions, for a type without a table, has no rules of the artifact.)
        wanted = [self._rules[n] for n in table.rule_ids or () if self._rules[n].quick is None
                  and self._rule_json[n]["check"]]
        if not wanted:
            return
        source = RuleSource(f"the checks of {len(wanted)} rules")
        for rule in wanted:
            source.add(self._rule_json[rule.number]["check"], rule.number, *self._where(rule.route))
        for rule, function in zip(wanted, source.build(), strict=True):
            rule.quick = function

    def _compile_residuals(self, ids: list[int]) -> None:
        """The generated code of the residual tests of the rules `ids` that have some and no
        code yet (a rule is in the table of each type its route takes), compiled together."""
        wanted = list(dict.fromkeys(n for n in ids if self._residual[n] and self._rest[n] is None))
        if not wanted:
            return
        source = RuleSource(f"the residual tests of {len(wanted)} rules")
        for n in wanted:
            source.add(self._residual[n], n, *self._where(self._rule_json[n]["route"]))
        for n, function in zip(wanted, source.build(), strict=True):
            self._rest[n] = function

    def _where(self, route: int) -> tuple[str, str]:
        header = self._routes[route]
        return header["name"], f"{header['file']}:{header['line']}:{header['column']}"

    def _prepare(self, table: _Table) -> _Table:
        if not table.fields and not table.scan:
            table.constant = self._targets(table.fired, table.chosen)
            table.fast = _always(table.constant)
        elif table.rule_ids is not None and len(table.rule_ids) <= SMALL_RULES:
            conditions, notes, names = self._conditions_of(table.rule_ids)
            body = ["m = 0"]
            for bit, (condition, note) in enumerate(zip(conditions, notes, strict=True)):
                body += [f"if {condition}:  # {note}", f"    m |= {1 << bit}"]
            single = f"return HELD if {conditions[0]} else NOT_HELD  # {notes[0]}" if len(conditions) == 1 else None
            table.fast = self._masked(table, table.rule_ids, body, names, single)
        elif table.rule_ids is not None and len(table.rule_ids) <= MAX_RULES:
            self._compile_residuals(table.rule_ids)
            shared: dict[str, Any] = {}
            ids = table.rule_ids

            def as_code(wanted: list[tuple[int, list[Atom]]]) -> list[Predicate]:
                source = RuleSource(f"the residual and rarer tests of {len(wanted)} rules")
                for i, atoms in wanted:
                    nodes = [*self._residual[ids[i]], *(atom.node for atom in atoms if atom.node is not None)]
                    source.add(nodes, ids[i], *self._where(self._rule_json[ids[i]]["route"]))
                return source.build()

            body = fire_source([(self._atoms[n], self._rest[n]) for n in ids], shared, "", as_code)
            table.fast = self._masked(table, table.rule_ids, body, shared)
        else:
            table.fast = self._generate(table)
        return table

    def _conditions_of(self, ids: list[int]) -> tuple[list[str], list[str], dict[str, Any]]:
        """Each rule of a small table as one condition, written out as a person writes it by
        hand (a table of a rule or two: the masks of bitmap.py would cost more than the tests)."""
        source = RuleSource("")
        conditions, notes = [], []
        for number in ids:
            rule = self._rule_json[number]
            nodes = ([anchor_node(rule["anchor"])] if rule.get("anchor") is not None else []) + rule["check"]
            conditions.append(" and ".join(source.expression(n) for n in nodes) or "True")
            # a comment at the end of the rule's line: a traceback or a profile there names the route
            notes.append(json.dumps("route {}, {}".format(*self._where(rule["route"])))[1:-1])  # (one line)
        return conditions, notes, source.names

    def _masked(self, table: _Table, ids: list[int], body: list[str], names: dict[str, Any],
                single: str | None = None) -> Callable[[Any], frozenset[str]]:
        """The generated code of a table from `body`, code that leaves in `m` the mask of its
        rules that hold (bit i for rule ids[i]): the answer the mask means, remembered per
        mask. `table.fire` is the same code returning the mask, for `deliveries`."""
        answers = _Answers(self._targets(table.fired, {}), self._route_targets, self._branch_targets)
        start = 0
        for route, branch in table.chosen.items():
            start |= answers.branch(route, branch)
        effects = []  # per rule bit: the answer's bits it sets
        for number in ids:
            rule = self._rules[number]
            if rule.branch is None:
                effects.append(answers.route(rule.route))
            elif table.chosen.get(rule.route, rule.branch + 1) <= rule.branch:
                effects.append(0)  # an unconditional branch at or before this one always wins
            else:
                effects.append(answers.branch(rule.route, rule.branch))
        memo: dict[int, frozenset[str]] = {}

        def resolve(mask: int) -> frozenset[str]:
            bits, rest = start, mask
            while rest:
                bit = rest & -rest
                rest ^= bit
                bits |= effects[bit.bit_length() - 1]
            answer = answers.memo.get(bits)
            if answer is None:  # (an empty answer is one too: `or` would work it out again)
                answer = answers.resolve(bits)
            if len(memo) < _MEMO:
                memo[mask] = answer
            return answer

        names.update({"SLOW": self._general(table), "MEMO": memo, "RESOLVE": resolve})
        if single is not None:  # one rule: its answer, or the other
            names.update({"HELD": resolve(1), "NOT_HELD": resolve(0)})
            answer = [f"    {single}"]
        else:
            answer = [*_indent(body, 4), "    try:", "        return MEMO[m]", "    except KeyError:",
                      "        return RESOLVE(m)"]
        lines = ["def match(data):",
                 "    if type(data) is not dict:",
                 "        return SLOW(data)",
                 *answer,
                 "def fire(data):",
                 *_indent(body, 4),
                 "    return m"]
        filename = f"<interlock table {id(table):x}>"
        linecache.cache[filename] = (0, None, [line + "\n" for line in "\n".join(lines).split("\n")], filename)
        exec(compile("\n".join(lines), filename, "exec"), names)
        table.fire = names["fire"]
        return names["match"]  # type: ignore[no-any-return]

    def _generate(self, table: _Table) -> Callable[[Any], frozenset[str]]:
        """Python source for one table's matching, compiled once at load (as Jinja does for
        templates): each field's lookup inlined, each rule's effect a constant bit mask.

        The function ORs into `m` the bits of the rules that fire (`_Answers`: a bit per
        target, and per `choose` a run of bits in branch order, whose lowest set bit is the
        branch that wins), then turns `m` into the answer with one dict lookup, so no set is
        built per event. Data that is not a plain dict takes the general path (`_fire`)."""
        self._quick(table)
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
            folded: list[str] = []
            for position, (length, by_prefix) in enumerate(field.folded):
                found = {p: h for p, numbers in by_prefix.items() if (h := hit(numbers)) is not None}
                if found:  # the same on the case-folded value (`startswith_ignore_case`)
                    form, code = fire(found.values())
                    names[f"FOLD{number}_{position}"] = {p: form(h) for p, h in found.items()}
                    folded += [f"    h = FOLD{number}_{position}.get(folded_x[:{length}])",
                               "    if h is not None:",
                               *_indent(code, 8)]
            if folded:
                prefixes += ["    folded_x = x.casefold()  # (not `f`: the checks loop names its function so)", *folded]
            if prefixes:
                body += ["if t is str:", *prefixes]
            if field.ranges is not None:
                body += self._ranges(number, field.ranges, bits, names)
            if not body:
                continue
            if field.field is not None:  # the common case: a top-level field, a value or a list of them
                lines += [f"    x = data.get({field.field!r})",
                          "    if x is not None:",
                          "        t = type(x)",
                          "        if isinstance(x, list):",
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

    def _ranges(self, number: int, ranges: RangeIndex, bits: Callable[[_Rule], int],
                 names: dict[str, Any]) -> list[str]:
        """The code of one field's range anchors, for a number `x`: one bisect to its slot, the
        OR of the bits of the ranges there without a check (`RangeIndex.masks`), and the ranges
        with a check from the slot's path up the segment tree."""
        rules = self._rules

        def unchecked(rule: int) -> int:
            return bits(rules[rule]) if rules[rule].check is None else 0

        masks = ranges.masks(unchecked)
        checked = [(first, last, (value, rules[rule].check if rules[rule].quick is None else rules[rule].quick))
                   for first, last, rule in ranges.runs
                   if rules[rule].check is not None and (value := bits(rules[rule]))]
        if not any(masks) and not checked:
            return []
        names[f"BOUNDS{number}"] = ranges.bounds
        lines = ["if (t is int or t is float) and x == x:",
                 f"    i = bisect_left(BOUNDS{number}, x)",
                 f"    s = 2 * i + 1 if i < {len(ranges.bounds)} and BOUNDS{number}[i] == x else 2 * i"]
        if any(masks):
            names[f"MASKS{number}"] = masks
            lines.append(f"    m |= MASKS{number}[s]")
        if checked:
            names[f"TREE{number}"] = ranges.spread(checked)
            lines += [f"    s += {ranges.size}",
                      "    while s:",
                      f"        for b, f in TREE{number}[s]:",
                      "            if f(data):",
                      "                m |= b",
                      "        s >>= 1"]
        return lines

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
            # A type no table was compiled for: only routes with a glob in `on` can take it (an
            # exact type has its table), and they are scanned. Types that the same routes take
            # share one table, and the types remembered are the last MAX_UNKNOWN: a stream of
            # distinct junk types costs a glob test per pattern each, and no memory.
            parts = event_type.split(".")
            routes = frozenset(route for pattern, route in self._globs if segments_match(pattern, parts))
            table = self._by_routes.get(routes)
            if table is None:
                table = self._prepare(_Table([u for u in self._unconditional if u[0] in routes], [],
                                             [rule for rule in self._conditions if rule.route in routes]))
                if len(self._by_routes) >= MAX_UNKNOWN:
                    self._by_routes.clear()
                self._by_routes[routes] = table
            if len(self._unknown) >= MAX_UNKNOWN:
                del self._unknown[next(iter(self._unknown))]  # the oldest
            self._unknown[event_type] = table
        return table

    def _entry(self, table: _Table) -> Callable[[Any], frozenset[str]]:
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
            if entry is not None:
                return entry(data)
            return entry_for(table_for(event_type))(data)

        match.__doc__ = Matcher.match.__doc__
        return match

    def match(self, event_type: str, data: Any) -> frozenset[str]:
        """The set of targets the event is routed to. No handler runs, nothing is stored."""
        entry = self._dispatch.get(event_type)
        if entry is None:
            entry = self._entry(self._table(event_type))
        return entry(data)

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
                values = scalars([value]) if isinstance(value, list) else (value,)
            else:
                values = scalars(values_at(data, field.path))
            for value in values:
                for number in field.lookup(value):
                    rule = rules[number]
                    if rule.check is None or (rule.quick if direct and rule.quick is not None else rule.check)(data):
                        if rule.branch is None:
                            fired.add(rule.route)
                        elif chosen.get(rule.route, rule.branch + 1) > rule.branch:
                            chosen[rule.route] = rule.branch
        for rule in table.scan:
            if rule.check is None or (rule.quick if direct and rule.quick is not None else rule.check)(data):
                if rule.branch is None:
                    fired.add(rule.route)
                elif chosen.get(rule.route, rule.branch + 1) > rule.branch:
                    chosen[rule.route] = rule.branch
        return fired, chosen

    def _bitmap_fired(self, table: _Table, mask: int) -> tuple[set[int], dict[int, int]]:
        """`_fire`'s answer from the mask of a bitmap table's rules that hold."""
        assert table.rule_ids is not None
        fired = set(table.fired)
        chosen = dict(table.chosen)
        while mask:
            bit = mask & -mask
            mask ^= bit
            rule = self._rules[table.rule_ids[bit.bit_length() - 1]]
            if rule.branch is None:
                fired.add(rule.route)
            elif chosen.get(rule.route, rule.branch + 1) > rule.branch:
                chosen[rule.route] = rule.branch
        return fired, chosen

    def deliveries(self, event_type: str, data: Any) -> dict[str, list[tuple[str, dict[str, Any] | None]]]:
        """Per target the event reaches: the routes that lead there, in declaration order, each
        with its transform (None: the event's data as it is)."""
        table = self._tables.get(event_type) or self._table(event_type)
        if table.constant is not None:
            fired, chosen = table.fired, table.chosen
        elif table.fire is not None and type(data) is dict:
            fired, chosen = self._bitmap_fired(table, table.fire(data))
        else:
            fired, chosen = self._fire(table, data)
        out: dict[str, list[tuple[str, dict[str, Any] | None]]] = {}
        for number in sorted({*fired, *chosen}):
            route = self._routes[number]
            arm = route if number in fired else route["branches"][chosen[number]]
            for delivery in arm["deliveries"]:
                out.setdefault(delivery["target"], []).append((route["name"], delivery["transform"]))
        return out


def _always(answer: frozenset[str]) -> Callable[[Any], frozenset[str]]:
    """The function of a table whose answer does not depend on the event's data. (A call
    for every type, rather than a test of what the entry is, is the cheaper of the two for
    the types that have rules, the ones that matter.)"""
    def constant(data: Any) -> frozenset[str]:
        return answer

    return constant


def _conjunction(checks: list[dict[str, Any]]) -> Predicate | None:
    if not checks:
        return None
    return _every([compile_predicate(c) for c in checks])


def _every(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def every(data: Any) -> bool:
        for part in parts:  # noqa: SIM110 - without the generator of all(), on the hot path
            if not part(data):
                return False
        return True

    return every


def _split(rule: dict[str, Any]) -> tuple[list[Atom], list[dict[str, Any]]]:
    """A rule's tests that an index answers (its anchor first; one per path), and the others."""
    atoms = [anchor_atom(rule["anchor"])] if rule.get("anchor") is not None else []
    paths = {atom.path for atom in atoms}
    residual = []
    for node in rule["check"]:
        atom = check_atom(node)
        if atom is None or atom.path in paths:
            residual.append(node)
        else:
            atoms.append(atom)
            paths.add(atom.path)
    return atoms, residual


def _rule_ids(table: dict[str, Any]) -> list[int]:
    """The rules of a compiled table (in its indexes and its scan), in order."""
    found = set(table["scan"])
    for field in table["index"]:
        for kind in ("eq", "prefix", "folded", "range"):
            found.update(entry[-1] for entry in field.get(kind, ()))
    return sorted(found)
