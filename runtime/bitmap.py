"""A table's rules as bit masks: every indexable test of every rule answered by lookups.

For a table of up to MAX_RULES rules, each rule is a bit. Each test of a rule that an index
can answer exactly (`==` and `in [...]` on a value, `startswith`, `startswith_ignore_case`, a
numeric range; and a rule's anchor, which may be a necessary condition only) is an *atom* on
its field path; a rule keeps at most one atom per path, the others stay its *residual* tests.
Per path, the generated code reads the event's values once and ORs together the masks of the
rules whose atom holds for one of them, `h` (a dict lookup per value for equality, one bisect
for ranges, whose slots hold their masks already, and for prefixes of three lengths or more
when none starts another; else a lookup per length).

Each rule's most selective atom (`_Field.rate`) is its *anchor*: the rules whose anchor holds
are the candidates, and the other atoms of a candidate are checked only when it is one:

    c = ALWAYS | h(p1) & ANCHORED(p1) | h(p2) & ANCHORED(p2) ...    (the anchoring paths)
    if c & CHECKED(p): c &= h(p) | ~CHECKED(p)                       (the others, per path)

then only the rules of `c` with residual tests run them (generated functions, codegen.py).
The fields read for the candidates are at most MAX_CHECKING, those that check the most rules:
the other atoms a rule does not anchor on are tested by its generated function too, so that a
table of a field per rule (`k == 5 and f5 == 1`) is not a field read per rule.
So the work per event is a lookup per anchoring field and a few operations on masks of as
many bits as the type has rules, plus the lookups of the other fields when a candidate needs
them and the residual tests of the candidates left: the number of routes adds nothing but the
width of the masks. This is what a bitmap index does; it answers tests of one rule on two
fields (`kind == "a" and amount in 1..5`) without calling anything, and a field that narrows
nothing (`region in ["eu", "us"]`, half the rules) is not read unless a candidate tests it.

The masks are as wide as the table has rules, so a table of more than MAX_RULES rules (one
event type with thousands of routes) is matched by its anchors instead (matching.py), which
keeps memory linear in the routes.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .codegen import anchor_node
from .predicates import leaves, scalars, values_at
from .ranges import RangeIndex, half_open

MAX_RULES = 1024
MAX_CHECKING = 16  # fields read for their candidates' sake, at most (see fire_source)
_SORTED_PREFIXES = 3  # prefix lengths from which one bisect costs less than a lookup per length
_BOOL = object()  # a boolean's key in an equality index: apart from 0 and 1


@attrs.frozen
class Atom:
    """One test an index answers: `kind` is "eq" (`values`), "prefix" or "folded" (`prefix`,
    the case-folded one for "folded") or "range" (`low`/`high`, None for an open end)."""

    path: tuple[str, ...]
    kind: str
    values: tuple[Any, ...] = ()
    prefix: str = ""
    low: Any = None
    low_inclusive: bool = False
    high: Any = None
    high_inclusive: bool = False
    node: dict[str, Any] | None = attrs.field(default=None, eq=False)  # the test, for code that tests it


def anchor_atom(anchor: dict[str, Any]) -> Atom:
    """The atom of a rule's anchor, as the compiler wrote it (compiler/tables.py)."""
    path, node = tuple(anchor["path"]), anchor_node(anchor)
    if anchor["kind"] == "eq":
        return Atom(path, "eq", values=tuple(anchor["values"]), node=node)
    if anchor["kind"] in ("prefix", "folded"):
        return Atom(path, anchor["kind"], prefix=anchor["prefix"], node=node)
    return Atom(path, "range", low=anchor["low"], low_inclusive=anchor["low_inclusive"],
                high=anchor["high"], high_inclusive=anchor["high_inclusive"], node=node)


def check_atom(node: dict[str, Any]) -> Atom | None:
    """The atom of a check that an index answers exactly, or None (it stays a residual test)."""
    op = node["op"]
    if op not in ("cmp", "in", "str", "range") or node.get("timestamp"):
        return None
    path = tuple(node["path"])
    if op == "cmp":
        value, cmp = node["value"], node["cmp"]
        if cmp == "==" and value is not None:
            return Atom(path, "eq", values=(value,), node=node)
        if cmp in ("<", "<=", ">", ">=") and type(value) in (int, float) and value == value:
            if cmp in (">", ">="):
                return Atom(path, "range", low=value, low_inclusive=cmp == ">=", node=node)
            return Atom(path, "range", high=value, high_inclusive=cmp == "<=", node=node)
        return None
    if op == "in":
        if node["negated"]:
            return None
        return Atom(path, "eq", values=tuple(v for v in node["values"] if v is not None), node=node)
    if op == "str":
        if node["test"] == "startswith":
            return Atom(path, "prefix", prefix=node["value"], node=node)
        if node["test"] == "startswith_ignore_case":
            return Atom(path, "folded", prefix=node["value"].casefold(), node=node)
        return None
    low, high = node["low"], node["high"]
    if type(low) in (int, float) and type(high) in (int, float) and low == low and high == high:
        return Atom(path, "range", low=low, low_inclusive=True, high=high, high_inclusive=True, node=node)
    return None


def _key(value: Any) -> Any:
    """The equality index's key of a literal (None: it equals nothing)."""
    t = type(value)
    if t is bool:
        return (_BOOL, value)
    if (t is str or t is int or t is float) and value == value:
        return value
    return None


class _Field:
    """The atoms of one path in one table, as masks of rule bits."""

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path
        self.constrained = 0
        self.eq: dict[Any, int] = {}
        self.prefixes: dict[int, dict[str, int]] = {}
        self.folded: dict[int, dict[str, int]] = {}
        self.ranges: list[list[Any]] = []
        self.anchored = 0  # the rules whose anchor here makes them candidates (see fire_source)
        self._bounds: list[Any] | None = None  # (for `rate`, made when first needed)
        self._prefix_count: dict[str, int] = {}

    def rate(self, atom: Atom) -> float:
        """About how often the atom holds, for choosing a rule's anchor: the share of this
        field's keys (equal values, prefixes, range boundaries) that it holds, one more key
        standing for the values no rule names."""
        if atom.kind == "eq":
            return len(atom.values) / (len(self.eq) + 1)
        if atom.kind in ("prefix", "folded"):
            count = self._prefix_count.get(atom.kind)
            if count is None:  # (once per kind: a sum over the lengths per rule would be rules x lengths)
                tables = self.prefixes if atom.kind == "prefix" else self.folded
                count = self._prefix_count[atom.kind] = sum(len(t) for t in tables.values())
            return 1 / (count + 1)
        if self._bounds is None:
            self._bounds = sorted({v for r in self.ranges for v in (r[0], r[2]) if v is not None})
        first = 0 if atom.low is None else bisect.bisect_left(self._bounds, atom.low)
        last = len(self._bounds) if atom.high is None else bisect.bisect_right(self._bounds, atom.high)
        return (last - first + 1) / (len(self._bounds) + 1)

    def add(self, atom: Atom, bit: int) -> None:
        self.constrained |= bit
        if atom.kind == "eq":
            for value in atom.values:
                key = _key(value)
                if key is not None:
                    self.eq[key] = self.eq.get(key, 0) | bit
        elif atom.kind in ("prefix", "folded"):
            table = (self.prefixes if atom.kind == "prefix" else self.folded).setdefault(len(atom.prefix), {})
            table[atom.prefix] = table.get(atom.prefix, 0) | bit
        else:
            self.ranges.append([atom.low, atom.low_inclusive, atom.high, atom.high_inclusive, bit])


def fire_source(rules: list[tuple[list[Atom], Callable[[Any], bool] | None]], names: dict[str, Any], prefix: str,
                as_code: Callable[[list[tuple[int, list[Atom]]]], list[Callable[[Any], bool]]]) -> list[str]:
    """The body of a function of `data` (a dict) that leaves in `m` the mask of the rules that
    hold: `rules` are (atoms, residual test or None), bit i for rule i. The values it needs go
    in `names`, under names that start with `prefix`. `as_code` makes, for (rule, atoms) pairs,
    functions that test the rule's residual tests and those atoms (see MAX_CHECKING)."""
    assert len(rules) <= MAX_RULES
    fields = _fields(atoms for atoms, _ in rules)
    always = 0  # the rules without atoms: candidates whatever the data
    anchors: list[Atom | None] = []
    for number, (atoms, _) in enumerate(rules):
        anchors.append(min(atoms, key=lambda atom: fields[atom.path].rate(atom)) if atoms else None)
        if not atoms:
            always |= 1 << number
    # The fields that check the most candidates are read when a candidate needs them; the
    # atoms of the others are tested by the candidates' own code, so that the fields visited
    # per event are at most MAX_CHECKING, not one per route (1,024 routes `k == N and fN == 1`).
    checks: dict[tuple[str, ...], int] = {}
    for (atoms, _), anchor in zip(rules, anchors, strict=True):
        for atom in atoms:
            if atom is not anchor:
                checks[atom.path] = checks.get(atom.path, 0) + 1
    read = set(sorted(checks, key=lambda path: -checks[path])[:MAX_CHECKING])
    demoted = [(number, [a for a in atoms if a is not anchor and a.path not in read])
               for number, ((atoms, _), anchor) in enumerate(zip(rules, anchors, strict=True))]
    demoted = [(number, atoms) for number, atoms in demoted if atoms]
    checked: dict[int, Callable[[Any], bool]] = {1 << n: residual for n, (_, residual) in enumerate(rules)
                                                  if residual is not None}
    for (number, _), function in zip(demoted, as_code(demoted) if demoted else [], strict=True):
        checked[1 << number] = function
    if demoted:  # (the fields again, without them)
        gone = {id(atom) for _, atoms in demoted for atom in atoms}
        fields = _fields([a for a in atoms if id(a) not in gone] for atoms, _ in rules)
    for number, anchor in enumerate(anchors):
        if anchor is not None:
            fields[anchor.path].anchored |= 1 << number
    names.update({"leaves": leaves, "scalars": scalars, "values_at": values_at, "bisect_left": bisect.bisect_left,
                  "bisect_right": bisect.bisect_right, "_B": _BOOL})
    everything = (1 << len(rules)) - 1
    ordered = _order(fields.values())
    lines = [f"c = {always}"]
    kept: dict[int, str] = {}  # per field both anchoring and checking rules: the local of its mask
    for number, field in enumerate(ordered):
        if field.anchored == field.constrained:
            lines += _field_lines(field, f"{prefix}F{number}_", names, None, [])
        elif field.anchored:  # its mask is kept for the rules it checks (below)
            kept[number] = f"h{number}"
            lines += _field_lines(field, f"{prefix}F{number}_", names, [f"c |= h & {field.anchored}", f"h{number} = h"],
                                  [f"h{number} = 0"])
    for number, field in enumerate(ordered):
        checking = field.constrained & ~field.anchored
        if not checking:
            continue
        keep = everything & ~checking
        if number in kept:
            lines += [f"if c & {checking}:", f"    c &= {kept[number]} | {keep}"]
        else:
            lines += [f"if c & {checking}:",
                      *_indented(_field_lines(field, f"{prefix}F{number}_", names, [f"c &= h | {keep}"],
                                              [f"c &= {keep}"]), 4)]
    lines.append("m = c")
    for name in [name for name in names if name.startswith(f"{prefix}F")]:
        names[name] = packed(names[name])
    if checked:
        names[f"{prefix}CHECK"] = checked
        with_residual = sum(checked)
        lines += [f"r = m & {with_residual}",
                  "while r:",  # the rules left that have tests of their own: run them
                  "    b = r & -r",
                  "    r ^= b",
                  f"    if not {prefix}CHECK[b](data):",
                  "        m ^= b"]
    return lines


def _fields(rules: Iterable[Iterable[Atom]]) -> dict[tuple[str, ...], _Field]:
    """The atoms of the rules (bit i for the i-th) by path."""
    fields: dict[tuple[str, ...], _Field] = {}
    for number, atoms in enumerate(rules):
        for atom in atoms:
            fields.setdefault(atom.path, _Field(atom.path)).add(atom, 1 << number)
    return fields


def _field_lines(field: _Field, prefix: str, names: dict[str, Any], after: list[str] | None,
                 otherwise: list[str]) -> list[str]:
    """Lines that read the values at `field`'s path and, when one is of a kind its atoms can
    hold, set `h` to the OR of the masks of the atoms that hold for them and run `after`;
    when none is (missing, null, another kind), run `otherwise`. With `after` None, the
    masks are ORed into `c` itself (a field whose every atom anchors its rule)."""
    kinds = {type(key) for key in field.eq}
    if field.eq:
        names[f"{prefix}EQ"] = field.eq
    strings: list[str] = [f"{prefix}EQ.get(x, 0)"] if str in kinds else []
    ordered = sorted(p for table in field.prefixes.values() for p in table)
    if len(field.prefixes) >= _SORTED_PREFIXES and not any(b.startswith(a) for a, b in itertools.pairwise(ordered)):
        # No prefix starts another, so one at most holds: the greatest up to `x`, found by one
        # bisect instead of a slice and a lookup per length. (When none is up to `x`, j is -1,
        # and `x` cannot start with the greatest of all.)
        names[f"{prefix}PS"] = ordered
        names[f"{prefix}PM"] = [field.prefixes[len(p)][p] for p in ordered]
        strings.append(f"({prefix}PM[j] if x.startswith({prefix}PS[(j := bisect_right({prefix}PS, x) - 1)]) else 0)")
    else:
        for length, table in sorted(field.prefixes.items()):
            names[f"{prefix}P{length}"] = table
            strings.append(f"{prefix}P{length}.get(x[:{length}], 0)")
    folded: list[str] = []
    for length, table in sorted(field.folded.items()):
        names[f"{prefix}C{length}"] = table
        folded.append(f"{prefix}C{length}.get(folded_x[:{length}], 0)")
    if folded:
        strings.append("(" + " | ".join(folded) + ")")
    numbers = int in kinds or float in kinds  # 5 and 5.0 are one key: either number finds it
    # The ranges: statements before (`setup`), the mask of those that hold `x` (`mask`), and
    # whether NaN must be kept out first (`guard`).
    setup: list[str] = []
    mask, guard = "", False
    if field.ranges:
        exact = half_open(field.ranges, lambda bit: bit)
        if exact is not None:  # one bisect (see ranges.half_open)
            names[f"{prefix}BOUNDS"], names[f"{prefix}MASKS"] = exact
            mask = f"{prefix}MASKS[bisect_right({prefix}BOUNDS, x)]"
            guard = bool(exact[1][-1])  # (NaN sorts above every bound, and is in no range)
        else:
            index = RangeIndex(field.ranges)
            names[f"{prefix}BOUNDS"] = index.bounds
            names[f"{prefix}MASKS"] = index.masks(lambda bit: bit)
            setup = [f"i = bisect_left({prefix}BOUNDS, x)"]
            mask = f"{prefix}MASKS[2 * i + 1 if i < {len(index.bounds)} and {prefix}BOUNDS[i] == x else 2 * i]"
            guard = True

    def ranges(into: str) -> list[str]:
        lines = [*setup, f"{into} {mask}"]
        return ["if x == x:  # (NaN is in no range)", *_indented(lines, 4)] if guard else lines

    def per_kind(target: str, assign: bool) -> list[tuple[str, list[str]]]:
        """A branch per kind of value the atoms can hold, each setting (`assign`) or adding to
        the mask `target` of the atoms that hold for `x`."""
        first = f"{target} =" if assign else f"{target} |="
        found: list[tuple[str, list[str]]] = []
        if strings:
            found.append(("t is str", [*(["folded_x = x.casefold()"] if folded else []),
                                       f"{first} {' | '.join(strings)}"]))
        if numbers or mask:
            if numbers:
                body = [f"{first} {prefix}EQ.get(x, 0)", *(ranges(f"{target} |=") if mask else [])]
            elif assign and guard:  # (set whether or not `x` is NaN)
                body = [f"{target} = 0", *ranges(f"{target} |=")]
            else:
                body = ranges(first)
            found.append(("t is int or t is float", body))
        if tuple in kinds:
            found.append(("t is bool", [f"{first} {prefix}EQ.get((_B, x), 0)"]))
        return found

    def branches(found: list[tuple[str, list[str]]], after: list[str]) -> list[str]:
        return [line for number, (test, body) in enumerate(found)
                for line in (f"{'if' if number == 0 else 'elif'} {test}:", *_indented([*body, *after], 4))]

    # Several values (a list, or a path through lists): the OR over them all.
    loop = "for x in leaves(x):" if len(field.path) == 1 else f"for x in scalars(values_at(data, {prefix}PATH)):"
    each = ["    t = type(x)", *_indented(branches(per_kind("h" if after is not None else "c", False), []), 4)]
    several = [loop, *each] if after is None else ["h = 0", loop, *each, *after]
    if len(field.path) > 1:
        names[f"{prefix}PATH"] = list(field.path)
        return several
    # one value: a branch per kind, then a list, then anything else
    one = branches(per_kind("c", False), []) if after is None else branches(per_kind("h", True), after)
    lines = [f"x = data.get({field.path[0]!r})", "t = type(x)", *one,
             f"{'elif' if one else 'if'} isinstance(x, list):", *_indented(several, 4)]
    if otherwise:
        lines += ["else:  # missing, null, or of a kind no atom holds for", *_indented(otherwise, 4)]
    return lines


def packed(value: Any) -> Any:
    """A copy of a table made of new objects, allocated one after the other, so that they lie
    together in memory: the keys, bounds and masks of a table were made among the rest of the
    artifact, and a lookup that touches a dozen of them (a bisect, a dict) then reads a dozen
    places far apart. On the 10,000-route project of bench/match.py, with 50 tables taking
    turns, a match costs a fifth less. Equal values, equal hashes: the lookups are unchanged."""
    t = type(value)
    if t is dict:
        return {packed(k): packed(v) for k, v in value.items()}
    if t is list:
        return [packed(v) for v in value]
    if t is str:
        return value[:1] + value[1:] if len(value) > 1 else value  # (a new string; short ones are shared)
    if t is int:
        return 0 - value * -1  # (a new int, but for the small ones, which are shared)
    if t is float:
        return value * 1.0
    return value


def _order(fields: Iterable[_Field]) -> list[_Field]:
    """The fields, the most selective first (the most keys per rule constrained): the checking
    fields are tested in this order, so that the candidates left when a later one is reached
    are fewer, and more often none of them needs it."""
    def keys(field: _Field) -> int:
        prefixes = sum(len(t) for t in field.prefixes.values()) + sum(len(t) for t in field.folded.values())
        return len(field.eq) + prefixes + 2 * len(field.ranges)

    return sorted(fields, key=lambda f: -keys(f) / max(f.constrained.bit_count(), 1))


def _indented(lines: Iterable[str], width: int) -> list[str]:
    return [" " * width + line for line in lines]
