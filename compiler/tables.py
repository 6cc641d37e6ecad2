"""Dispatch tables: routes turned into per-event-type indexes whose lookups do not grow with routes.

How a `when` becomes table entries:

1. The condition is put in disjunctive normal form over its atoms (`and`/`or` only;
   a `not (...)` is one opaque atom, because `not (x == 1)` is not `x != 1` when `x` is
   missing). Each conjunction is a *rule* of its route (or of its `choose` branch). A
   condition whose normal form would exceed MAX_CONJUNCTIONS stays one rule, scanned.
2. Each rule picks one *anchor* atom that an index can answer exactly: an equality or a
   set (`==`, `in [...]`: a hash lookup), a prefix (`startswith`: one lookup per distinct
   prefix length; `startswith_ignore_case` the same on the case-folded value, a `folded`
   entry), or a numeric range (`<`, `>=`, `in a..b`: sorted boundaries). Two kinds of atom
   give an anchor that finds a superset, and stay a check beside it: `matches regex` by its
   literal prefix (`"EU-\\d+"`: the prefix `EU-`), and `any PATH { ... }` by the anchor of one
   of its conjuncts on PATH plus that conjunct's path. Rules with no anchor are *scanned*:
   evaluated in full for every event of the type.
   A timestamp comparison (`reference.is_timestamp_comparison`: on a path declared
   `timestamp` in a closed schema the route's `on` covers) is never an anchor: it compares
   instants (`"...T11:14:00+02:00" == "...T09:14:00Z"`), which neither a hash of the text nor
   the numeric boundaries answer, so it stays a check, marked `"timestamp": true`.
3. Per event type (declared events, and exact types named in `on` or `emits`), the rules
   that can apply (by exact type or glob) are indexed by the anchor's field path. Tables
   with the same content are stored once and shared by their types.

At match time the runtime looks the event's values up in each field index of its type's
table, and only the rules whose anchor matched have their other atoms evaluated. So the
work per event depends on the fields of the type and on the rules that really match, not
on how many routes there are. Types nobody declared or named fall back to the routes
whose globs match them, evaluated in full.

A `choose` keeps first-match semantics: every branch is rules; among the branches of one
choose that fire, the runtime takes the first; `otherwise` is an unconditional branch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from interlock.dsl import Project, SourceFile, ast
from interlock.dsl.regex import literal_prefix

from .reference import Stamps, event_type_matches, is_timestamp_comparison, project_timestamp_paths, within

MAX_CONJUNCTIONS = 64

_SAME_JSON = msgspec.json.Encoder(order="sorted")  # tables that are the same JSON are stored once

Json = dict[str, Any]


def _text(sources: dict[str, SourceFile], node: Any) -> str:
    source = sources.get(node.span.file)
    # one line, whatever the layout of the source
    return " ".join(source.text[node.span.start:node.span.end].split()) if source else ""


def expr_json(expr: ast.Expr, sources: dict[str, SourceFile], stamps: Stamps = frozenset(),
              made: dict[int, Json] | None = None) -> Json:
    """The artifact's form of a predicate (see runtime/predicates.py for the schema); a
    comparison on a path of `stamps` that compares instants is marked `"timestamp": true`.
    `made`, when given, gets the form of `expr` and of each node of it outside `any { }`,
    by id() of the node (what a rule's checks take again)."""
    out: Json
    kind = type(expr)
    if kind is ast.And or kind is ast.Or:
        assert isinstance(expr, (ast.And, ast.Or))
        out = {"op": "and" if kind is ast.And else "or",
               "args": [expr_json(e, sources, stamps, made) for e in expr.operands]}
    elif kind is ast.Not:
        assert isinstance(expr, ast.Not)
        out = {"op": "not", "arg": expr_json(expr.operand, sources, stamps, made)}
    else:
        out = _LEAVES[kind](expr, sources, stamps)
        if (kind is ast.Compare or kind is ast.InList) and is_timestamp_comparison(expr, stamps):
            out["timestamp"] = True
    out["text"] = _text(sources, expr)
    out["at"] = [expr.span.line, expr.span.column]
    if made is not None:
        made[id(expr)] = out
    return out


# Per kind of test, its artifact form up to its `timestamp`, `text` and `at` (in this order:
# the artifact's keys are written as they are made).
_LEAVES: dict[type, Callable[[Any, dict[str, SourceFile], Stamps], Json]] = {
    ast.Compare: lambda e, _s, _t: {"path": list(e.path.parts), "op": "cmp", "cmp": e.op, "value": e.value.value},
    ast.InList: lambda e, _s, _t: {"path": list(e.path.parts), "op": "in", "values": [v.value for v in e.values],
                                   "negated": e.negated},
    ast.InRange: lambda e, _s, _t: {"path": list(e.path.parts), "op": "range", "low": e.low.value,
                                    "high": e.high.value},
    ast.InCidr: lambda e, _s, _t: {"path": list(e.path.parts), "op": "cidr", "network": e.cidr},
    ast.Exists: lambda e, _s, _t: {"path": list(e.path.parts), "op": "exists"},
    ast.Missing: lambda e, _s, _t: {"path": list(e.path.parts), "op": "missing"},
    ast.IsNull: lambda e, _s, _t: {"path": list(e.path.parts), "op": "null"},
    ast.StringTest: lambda e, _s, _t: {"path": list(e.path.parts), "op": "str", "test": e.op,
                                       "value": e.value.value},
    ast.RegexTest: lambda e, _s, _t: {"path": list(e.path.parts), "op": "regex", "value": e.value.value},
    ast.AnyElement: lambda e, s, t: {"path": list(e.path.parts), "op": "any",
                                     "arg": expr_json(e.condition, s, within(t, e.path.parts))},
    ast.Contains: lambda e, _s, _t: {"path": list(e.path.parts), "op": "contains", "value": e.value.value},
}


def _dnf(expr: ast.Expr) -> list[list[ast.Expr]] | None:
    """The conjunctions of `expr`'s disjunctive normal form, or None when too large."""
    if isinstance(expr, ast.Or):
        out: list[list[ast.Expr]] = []
        for operand in expr.operands:
            part = _dnf(operand)
            if part is None:
                return None
            out.extend(part)
            if len(out) > MAX_CONJUNCTIONS:
                return None
        return out
    if isinstance(expr, ast.And):
        product: list[list[ast.Expr]] = [[]]
        for operand in expr.operands:
            part = _dnf(operand)
            if part is None or len(product) * len(part) > MAX_CONJUNCTIONS:
                return None
            product = [left + right for left in product for right in part]
        return product
    return [[expr]]


def _atoms(expr: ast.Expr) -> list[ast.Expr]:
    if isinstance(expr, (ast.And, ast.Or)):
        return [a for e in expr.operands for a in _atoms(e)]
    return [expr]


def _key(value: Any) -> Any:
    """Values that are equal in the language are one key (`5` and `5.0`; `true` apart from 1)."""
    return ("bool", value) if isinstance(value, bool) else value


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _anchor(atom: ast.Expr, stamps: Stamps) -> tuple[int, Json, bool] | None:
    """(priority, index entry with its path, exact) when an index can answer `atom`; lower
    priority is better. Exact: the lookup is the whole test, and the atom needs no check. Not
    exact: the lookup finds a superset (a regular expression's literal prefix, a test inside
    `any PATH { ... }`), and the atom stays a check. Never a timestamp comparison: the indexes
    compare text and numbers, not instants."""
    if isinstance(atom, ast.AnyElement):
        return _element_anchor(atom, stamps)
    if is_timestamp_comparison(atom, stamps) or not isinstance(atom, _INDEXABLE):
        return None
    found = _entry(atom)
    if found is None:
        return None
    priority, entry, exact = found
    return priority, {**entry, "path": list(atom.path.parts)}, exact


_INDEXABLE = (ast.Compare, ast.InList, ast.StringTest, ast.RegexTest, ast.InRange)


def _entry(atom: ast.Expr) -> tuple[int, Json, bool] | None:
    if isinstance(atom, ast.Compare) and atom.value.value is not None:
        value = atom.value.value
        if atom.op == "==":
            return 0, {"kind": "eq", "values": [value]}, True
        if atom.op in ("<", "<=", ">", ">=") and _is_number(value) and value == value:
            low, high = (value, None) if atom.op in (">", ">=") else (None, value)
            inclusive = atom.op in ("<=", ">=")
            return 2, {"kind": "range", "low": low, "high": high,
                       "low_inclusive": inclusive, "high_inclusive": inclusive}, True
    if isinstance(atom, ast.InList) and not atom.negated:
        values = [v.value for v in atom.values if v.value is not None]
        return 0, {"kind": "eq", "values": values}, True
    if isinstance(atom, ast.StringTest) and atom.op == "startswith":
        return 1, {"kind": "prefix", "prefix": atom.value.value}, True
    if isinstance(atom, ast.StringTest) and atom.op == "startswith_ignore_case":
        assert isinstance(atom.value.value, str)
        return 1, {"kind": "folded", "prefix": atom.value.value.casefold()}, True
    if isinstance(atom, ast.RegexTest):
        assert isinstance(atom.value.value, str)
        prefix = literal_prefix(atom.value.value)
        return (1, {"kind": "prefix", "prefix": prefix}, False) if prefix else None
    if isinstance(atom, ast.InRange):
        low, high = atom.low.value, atom.high.value
        if _is_number(low) and _is_number(high) and low == low and high == high:
            return 2, {"kind": "range", "low": low, "high": high, "low_inclusive": True, "high_inclusive": True}, True
    return None


def _element_anchor(atom: ast.AnyElement, stamps: Stamps) -> tuple[int, Json, bool] | None:
    """An anchor for `any PATH { A and B ... }`: the best of its conjuncts', on PATH plus the
    conjunct's path (one element passes A, so its value is among PATH.A's), never exact."""
    operands = atom.condition.operands if isinstance(atom.condition, ast.And) else (atom.condition,)
    inner = within(stamps, atom.path.parts)
    found = [a for operand in operands if (a := _anchor(operand, inner)) is not None]
    if not found:
        return None
    priority, entry, _ = min(found, key=lambda a: a[0])
    return priority, {**entry, "path": [*atom.path.parts, *entry["path"]]}, False


class _Compiler:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.routes: list[Json] = []
        self.rules: list[Json] = []
        self.unconditional: list[tuple[int, int | None]] = []  # (route, branch) that always fire
        # per route and choose name, the paths of its timestamp comparisons
        self.stamps = project_timestamp_paths(project)
        # By id() of an atom of a `when`: its anchor (`gather` finds each, a rule takes it
        # again), and its artifact form (made with the `when`'s, which a rule's checks repeat).
        # An atom is in one `when`, read with that route's stamps, whichever rule it is in.
        self.anchors: dict[int, tuple[int, Json, bool] | None] = {}
        self.made: dict[int, Json] = {}

    def anchor(self, atom: ast.Expr, stamps: Stamps) -> tuple[int, Json, bool] | None:
        """`_anchor(atom, stamps)`, worked out once per atom."""
        key = id(atom)
        if key not in self.anchors:
            self.anchors[key] = _anchor(atom, stamps)
        return self.anchors[key]

    def when_json(self, when: ast.Expr | None, stamps: Stamps) -> Json | None:
        return expr_json(when, self.project.sources, stamps, self.made) if when is not None else None

    def deliveries(self, to: Iterable[ast.Delivery]) -> list[Json]:
        return [{"target": d.target.text,
                 "transform": _transform_json(d.transform) if d.transform else None} for d in to]

    def gather(self) -> None:
        """What the anchors estimate their selectivity from: per field, the values tested."""
        self.values: dict[tuple[str, ...], set[Any]] = {}
        self.prefixes: dict[tuple[str, ...], set[str]] = {}
        bounds: dict[tuple[str, ...], list[float]] = {}
        for expr, stamps in self.conditions():
            for atom in _atoms(expr):
                anchor = self.anchor(atom, stamps)
                if anchor is None:
                    continue
                entry = anchor[1]
                path = tuple(entry["path"])
                if entry["kind"] == "eq":
                    self.values.setdefault(path, set()).update(_key(v) for v in entry["values"])
                elif entry["kind"] in ("prefix", "folded"):
                    self.prefixes.setdefault(path, set()).add(entry["prefix"])
                else:
                    bounds.setdefault(path, []).extend(b for b in (entry["low"], entry["high"]) if b is not None)
        self.spans = {path: max(values) - min(values) for path, values in bounds.items()}

    def conditions(self) -> list[tuple[ast.Expr, Stamps]]:
        """Every `when`, with the timestamp paths of its route or choose."""
        out: list[tuple[ast.Expr, Stamps]] = [
            (d.when, self.stamps[d.name.text]) for d in self.project.routes.values() if d.when is not None]
        out += [(b.when, self.stamps[c.name.text]) for c in self.project.chooses.values() for b in c.branches
                if b.when is not None]
        return out

    def selectivity(self, entry: Json) -> float:
        """The share of events an anchor is expected to let through, estimated from how many
        different values the project's rules test on the same field: an equality on a field
        tested against 500 values is a better anchor than a set over 2 of 6 regions."""
        path = tuple(entry["path"])
        if entry["kind"] == "eq":
            return len(entry["values"]) / max(len(self.values.get(path, ())), len(entry["values"]), 1)
        if entry["kind"] in ("prefix", "folded"):
            return 1 / max(len(self.prefixes.get(path, ())), 1)
        span = self.spans.get(path, 0)
        if entry["low"] is None or entry["high"] is None or span <= 0:
            return 0.5
        width = float(entry["high"] - entry["low"])
        return min(max(width / span, 0.0), 1.0)

    def add_condition(self, route: int, branch: int | None, when: ast.Expr | None, stamps: Stamps) -> list[int]:
        """The rules of one route or branch; none (and an unconditional entry) without `when`."""
        if when is None:
            self.unconditional.append((route, branch))
            return []
        conjunctions = _dnf(when)
        if conjunctions is None:
            conjunctions = [[when]]
        ids = []
        for atoms in conjunctions:
            anchors = [(a, i) for i, atom in enumerate(atoms) if (a := self.anchor(atom, stamps)) is not None]
            rule: Json = {"route": route, "branch": branch}
            rest = atoms
            if anchors:
                (_, entry, exact), position = anchors[0] if len(anchors) == 1 else min(
                    anchors, key=lambda pair: (self.selectivity(pair[0][1]), pair[0][0], not pair[0][2]))
                rule["anchor"] = entry
                if exact:
                    rest = atoms[:position] + atoms[position + 1:]
            rule["check"] = [self.made.get(id(a)) or expr_json(a, self.project.sources, stamps) for a in rest]
            ids.append(len(self.rules))
            self.rules.append(rule)
        return ids

    def compile_routes(self) -> None:
        self.gather()
        for decl in self.project.routes.values():
            index = len(self.routes)
            stamps = self.stamps[decl.name.text]
            self.routes.append({**_route_header(decl, "route"), "when": self.when_json(decl.when, stamps),
                                "deliveries": self.deliveries(decl.to)})
            self.add_condition(index, None, decl.when, stamps)
        for choose in self.project.chooses.values():
            index = len(self.routes)
            stamps = self.stamps[choose.name.text]
            branches = []
            for number, branch in enumerate(choose.branches):
                branches.append({"when": self.when_json(branch.when, stamps), "deliveries": self.deliveries(branch.to)})
                self.add_condition(index, number, branch.when, stamps)
            self.routes.append({**_route_header(choose, "choose"), "branches": branches})


def _route_header(decl: ast.RouteDecl | ast.ChooseDecl, kind: str) -> Json:
    return {"name": decl.name.text, "kind": kind, "on": [p.text for p in decl.on],
            "file": decl.span.file, "line": decl.span.line, "column": decl.span.column}


def _transform_json(transform: ast.Transform) -> Json:
    """The artifact's form of a transform (see runtime/transform.py): per key, what it holds;
    `...` under the key "" (no key of the source is empty, E0015)."""
    entries: Json = {"": {"spread": []}} if transform.spread is not None else {}
    for entry in transform.entries:
        entries[entry.key.text] = _value_json(entry.value)
    return entries


def _value_json(value: ast.TransformValue) -> Json:
    if isinstance(value, ast.Path):
        return {"copy": list(value.parts)}
    if isinstance(value, ast.Default):
        return {"copy": list(value.path.parts), "default": _value_json(value.fallback)}
    if isinstance(value, ast.Template):
        return {"template": [part if isinstance(part, str) else list(part.parts) for part in value.parts]}
    if isinstance(value, ast.Transform):
        return {"object": _transform_json(value)}
    return {"value": ast.to_python(value)}


def _table(rules: list[Json], rule_ids: list[int], unconditional: list[tuple[int, int | None]]) -> Json:
    """One event type's table: its unconditional entries, field indexes of anchors, and scans."""
    fields: dict[tuple[str, ...], Json] = {}
    scan = []
    for rule_id in rule_ids:
        anchor = rules[rule_id].get("anchor")
        if anchor is None:
            scan.append(rule_id)
            continue
        key = tuple(anchor["path"])
        index = fields.get(key)
        if index is None:
            index = fields[key] = {"path": anchor["path"], "eq": [], "prefix": [], "range": []}
        if anchor["kind"] == "eq":
            for value in anchor["values"]:
                index["eq"].append([value, rule_id])
        elif anchor["kind"] == "prefix":
            index["prefix"].append([anchor["prefix"], rule_id])
        elif anchor["kind"] == "folded":  # only where there is one: older artifacts read the same
            index.setdefault("folded", []).append([anchor["prefix"], rule_id])
        else:
            index["range"].append([anchor["low"], anchor["low_inclusive"], anchor["high"],
                                   anchor["high_inclusive"], rule_id])
    return {
        "unconditional": [list(entry) for entry in unconditional],
        "index": list(fields.values()),
        "scan": scan,
    }


def known_event_types(project: Project) -> list[str]:
    """Declared event types, and exact (glob-free) types named in `on`, `emits` and tests."""
    names = dict.fromkeys(project.events)
    decls: list[ast.RouteDecl | ast.ChooseDecl] = [*project.routes.values(), *project.chooses.values()]
    for decl in decls:
        names.update(dict.fromkeys(p.text for p in decl.on if not p.is_glob))
    for target in project.targets.values():
        names.update(dict.fromkeys(e.text for e in target.options.emits or ()))
    for test in project.tests.values():
        names.update(dict.fromkeys(step.send.event_type.text for step in test.steps))
    return list(names)


def compile_dispatch(project: Project) -> Json:
    """The routes, their rules, and a table per known event type (shared when identical)."""
    compiler = _Compiler(project)
    compiler.compile_routes()
    rules_by_route: dict[int, list[int]] = {}
    for rule_id, rule in enumerate(compiler.rules):
        rules_by_route.setdefault(rule["route"], []).append(rule_id)
    unconditional_of: dict[int, list[tuple[int, int | None]]] = {}
    for entry in compiler.unconditional:  # (in the order of routes, as `applicable` is)
        unconditional_of.setdefault(entry[0], []).append(entry)
    tables: list[Json] = []
    table_ids: dict[bytes, int] = {}
    types: dict[str, int] = {}
    exact: dict[str, list[int]] = {}
    globs: list[tuple[str, int]] = []
    for number, decl in enumerate(compiler.routes):
        for pattern in decl["on"]:
            if "*" in pattern:
                globs.append((pattern, number))
            else:
                exact.setdefault(pattern, []).append(number)
    for event_type in known_event_types(project):
        matched = set(exact.get(event_type, ()))
        matched.update(number for pattern, number in globs if event_type_matches(pattern, event_type))
        applicable = sorted(matched)
        rule_ids = [r for i in applicable for r in rules_by_route.get(i, [])]
        unconditional = [u for i in applicable for u in unconditional_of.get(i, ())]
        table = _table(compiler.rules, rule_ids, unconditional)
        key = _SAME_JSON.encode(table)  # (one text per JSON value: `1` and `1.0`, `true` and `1` apart)
        if key not in table_ids:
            table_ids[key] = len(tables)
            tables.append(table)
        types[event_type] = table_ids[key]
    return {
        "routes": compiler.routes,
        "rules": compiler.rules,
        "unconditional": [list(u) for u in compiler.unconditional],
        "types": types,
        "tables": tables,
    }
