"""A table's rules as bit masks: every indexable test of every rule answered by lookups.

For a table of up to MAX_RULES rules, each rule is a bit. Each test of a rule that an index
can answer exactly (`==` and `in [...]` on a value, `startswith`, `startswith_ignore_case`, a
numeric range; and a rule's anchor, which may be a necessary condition only) is an *atom* on
its field path; a rule keeps at most one atom per path, the others stay its *residual* tests.
Per path, the generated code reads the event's values once and ORs together the masks of the
rules whose atom holds for one of them (a dict lookup per value for equality, one per prefix
length, one bisect for ranges, whose slots hold their masks already). A rule with an atom on
the path whose bit is not in that OR fails:

    failed |= CONSTRAINED & ~held          (per path)
    m = ALL & ~failed                      (the rules whose every atom holds)

then only the rules of `m` with residual tests run them (generated functions, codegen.py).
So the work per event is a lookup per field of the type and a few operations on masks of as
many bits as the type has rules, plus the residual tests of the rules that pass their atoms:
the number of routes adds nothing but the width of the masks. This is what a bitmap index
does; it answers tests of one rule on two fields (`kind == "a" and amount in 1..5`) without
calling anything, where an anchor answers one and calls a function for the other.

The masks are as wide as the table has rules, so a table of more than MAX_RULES rules (one
event type with thousands of routes) is matched by its anchors instead (matching.py), which
keeps memory linear in the routes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .predicates import leaves, scalars, values_at
from .ranges import RangeIndex

MAX_RULES = 1024
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


def anchor_atom(anchor: dict[str, Any]) -> Atom:
    """The atom of a rule's anchor, as the compiler wrote it (compiler/tables.py)."""
    path = tuple(anchor["path"])
    if anchor["kind"] == "eq":
        return Atom(path, "eq", values=tuple(anchor["values"]))
    if anchor["kind"] in ("prefix", "folded"):
        return Atom(path, anchor["kind"], prefix=anchor["prefix"])
    return Atom(path, "range", low=anchor["low"], low_inclusive=anchor["low_inclusive"],
                high=anchor["high"], high_inclusive=anchor["high_inclusive"])


def check_atom(node: dict[str, Any]) -> Atom | None:
    """The atom of a check that an index answers exactly, or None (it stays a residual test)."""
    op = node["op"]
    if op not in ("cmp", "in", "str", "range") or node.get("timestamp"):
        return None
    path = tuple(node["path"])
    if op == "cmp":
        value, cmp = node["value"], node["cmp"]
        if cmp == "==" and value is not None:
            return Atom(path, "eq", values=(value,))
        if cmp in ("<", "<=", ">", ">=") and type(value) in (int, float) and value == value:
            if cmp in (">", ">="):
                return Atom(path, "range", low=value, low_inclusive=cmp == ">=")
            return Atom(path, "range", high=value, high_inclusive=cmp == "<=")
        return None
    if op == "in":
        return None if node["negated"] else Atom(path, "eq", values=tuple(v for v in node["values"] if v is not None))
    if op == "str":
        if node["test"] == "startswith":
            return Atom(path, "prefix", prefix=node["value"])
        if node["test"] == "startswith_ignore_case":
            return Atom(path, "folded", prefix=node["value"].casefold())
        return None
    low, high = node["low"], node["high"]
    if type(low) in (int, float) and type(high) in (int, float) and low == low and high == high:
        return Atom(path, "range", low=low, low_inclusive=True, high=high, high_inclusive=True)
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


def fire_source(rules: list[tuple[list[Atom], Callable[[Any], bool] | None]],
                names: dict[str, Any], prefix: str) -> list[str]:
    """The body of a function of `data` (a dict) that leaves in `m` the mask of the rules that
    hold: `rules` are (atoms, residual test or None), bit i for rule i. The values it needs go
    in `names`, under names that start with `prefix`."""
    assert len(rules) <= MAX_RULES
    fields: dict[tuple[str, ...], _Field] = {}
    checked: dict[int, Callable[[Any], bool]] = {}
    for number, (atoms, residual) in enumerate(rules):
        bit = 1 << number
        for atom in atoms:
            fields.setdefault(atom.path, _Field(atom.path)).add(atom, bit)
        if residual is not None:
            checked[bit] = residual
    names.update({"leaves": leaves, "scalars": scalars, "values_at": values_at, "bisect_left": bisect.bisect_left,
                  "_B": _BOOL})
    lines = ["failed = 0"]
    for number, field in enumerate(_order(fields.values())):
        lines += _field_lines(field, f"{prefix}F{number}_", names, guarded=number > 0)
    everything = (1 << len(rules)) - 1
    lines.append(f"m = {everything} & ~failed" if fields else f"m = {everything}")
    if checked:
        names[f"{prefix}CHECK"] = checked
        with_residual = sum(checked)
        lines += [f"r = m & {with_residual}",
                  "while r:",  # the rules left that have residual tests: run them
                  "    b = r & -r",
                  "    r ^= b",
                  f"    if not {prefix}CHECK[b](data):",
                  "        m ^= b"]
    return lines


def _field_lines(field: _Field, prefix: str, names: dict[str, Any], guarded: bool) -> list[str]:
    """Lines that add to `failed` the rules of `field` whose atom no value at its path passes:
    per kind of value, the OR of the masks of the atoms that hold (`h`). With `guarded`, the
    field is skipped when every rule it constrains has failed already."""
    kinds = {type(key) for key in field.eq}
    if field.eq:
        names[f"{prefix}EQ"] = field.eq
    strings: list[str] = [f"{prefix}EQ.get(x, 0)"] if str in kinds else []
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
    ranges: list[str] = []  # statements ORing in the mask of the ranges that hold `x`
    if field.ranges:
        index = RangeIndex(field.ranges)
        names[f"{prefix}BOUNDS"] = index.bounds
        names[f"{prefix}MASKS"] = index.masks(lambda bit: bit)
        slot = f"2 * i + 1 if i < {len(index.bounds)} and {prefix}BOUNDS[i] == x else 2 * i"
        ranges = ["if x == x:  # (NaN is in no range)", f"    i = bisect_left({prefix}BOUNDS, x)",
                  f"    h |= {prefix}MASKS[{slot}]"]

    def per_kind(into: str) -> list[tuple[str, list[str]]]:
        """A branch per kind of value the atoms can hold, each setting (`into` "=") or adding
        to (`into` "|=") the mask `h` of the atoms that hold for `x`."""
        found: list[tuple[str, list[str]]] = []
        if strings:
            found.append(("t is str", [*(["folded_x = x.casefold()"] if folded else []),
                                       f"h {into} {' | '.join(strings)}"]))
        if numbers or ranges:
            start = [f"h {into} {prefix}EQ.get(x, 0)"] if numbers else ["h = 0"] if into == "=" else []
            found.append(("t is int or t is float", [*start, *ranges]))
        if tuple in kinds:
            found.append(("t is bool", [f"h {into} {prefix}EQ.get((_B, x), 0)"]))
        return found

    def branches(found: list[tuple[str, list[str]]], after: list[str]) -> list[str]:
        return [line for number, (test, body) in enumerate(found)
                for line in (f"{'if' if number == 0 else 'elif'} {test}:", *_indented([*body, *after], 4))]

    every = field.constrained
    # Several values (a list, or a path through lists): the OR over them all.
    loop = "for x in leaves(x):" if len(field.path) == 1 else f"for x in scalars(values_at(data, {prefix}PATH)):"
    several = ["h = 0", loop, "    t = type(x)", *_indented(branches(per_kind("|="), []), 4),
               f"failed |= {every} & ~h"]
    if len(field.path) > 1:
        names[f"{prefix}PATH"] = list(field.path)
        lines = several
    else:  # one value: a branch per kind, then a list, then anything else
        one = branches(per_kind("="), [f"failed |= {every} & ~h"])
        lines = [f"x = data.get({field.path[0]!r})", "t = type(x)", *one,
                 f"{'elif' if one else 'if'} isinstance(x, list):", *_indented(several, 4),
                 "else:  # missing, null, or of a kind no atom holds for",
                 f"    failed |= {every}"]
    if guarded:
        return [f"if {every} & ~failed:", *_indented(lines, 4)]
    return lines


def _order(fields: Iterable[_Field]) -> list[_Field]:
    """The fields, the most selective first (the most keys per rule constrained), so that the
    later ones, guarded, are skipped when their rules have failed already."""
    def keys(field: _Field) -> int:
        prefixes = sum(len(t) for t in field.prefixes.values()) + sum(len(t) for t in field.folded.values())
        return len(field.eq) + prefixes + 2 * len(field.ranges)

    return sorted(fields, key=lambda f: -keys(f) / max(f.constrained.bit_count(), 1))


def _indented(lines: Iterable[str], width: int) -> list[str]:
    return [" " * width + line for line in lines]
