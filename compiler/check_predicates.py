"""Conditions that can never hold: a `when` never true (`W0250`), a `choose` branch never taken (`W0251`).

A warning here is a proof, never a guess: the pass reports a condition only when no event
can satisfy it under the matching semantics (`compiler/reference.py`), and says nothing
when it is unsure. How it decides:

- The condition is put in disjunctive normal form over literals (a predicate or its
  negation; `not` is plain negation, so De Morgan is exact). It is never true when every
  conjunction is impossible. Past `MAX_CLAUSES` conjunctions the pass gives up.
- In a conjunction, literals are grouped by field path. `exists` / `missing` give
  presence (a value test needs a value, `missing p` empties every path below `p`), a
  predicate next to its own negation is impossible, and the value tests on one path are
  decided per kind of value (number, string, boolean, anything else): numbers as unions of
  intervals (`<`, `in 10..100`, `==`, `!=`, `in [...]` and their negations, exactly);
  strings as finite candidate sets (from `==`, `in`) checked against every test, else
  lexicographic bounds, prefixes and suffixes; booleans and other values by trying them.
  Kinds are not taken from schemas: a comparison of the wrong kind is `check_types`' error.
- Timestamp comparisons (`reference.is_timestamp_comparison`: on a path declared `timestamp`
  in a closed schema the `on` covers) compare instants, not text: a value is either an
  instant, on which they are intervals of instants (microseconds since the epoch, reasoned
  about as numbers are, so `placed_at > "...T11:00:00+02:00" and placed_at < "...T10:00:00Z"`
  is possible), or not one, on which each is fixed (only `!=` and `not in` hold). The other
  tests of the same path are left out of the instant side (a looser question, so never a
  false warning), and the timestamp comparisons out of the non-instant side, but for that
  fixed verdict.
- A path may yield several values (through a list: "any element matches"). Two tests on
  such a path may hold on different elements, so only this is used there: each positive
  test needs one value that passes it and fails every negated test (`not (p == 1)` holds
  for every element). A path yields one value only when every event type the route may
  receive has a closed schema in which no segment of the path is a list or `any`; an `on`
  with a glob may receive undeclared (open) event types, so its paths are never single.
- `choose` branch `j` is never taken when `when_j and not when_i` is never true for an
  earlier branch `i` (one of the MAX_EARLIER just above), or `when_j and not when_1 and ...
  and not when_(j-1)` is (when there are at most MAX_EARLIER branches above).

Does not report: conditions that hinge on `is null` or on `any PATH { ... }` (left out of
the reasoning, as if unknown), comparisons with `null` (`W0010` does), alternatives of an `or` that are
impossible while another is not, conditions that are always true, or an `otherwise` that
can never be reached.
"""

from __future__ import annotations

import datetime
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import attrs

from interlock.dsl import Diagnostic, Project, Related, Span, ast
from interlock.dsl.diagnostics import warning

from .reference import Stamps, evaluate, instant, is_timestamp_comparison, project_timestamp_paths

# Conditions with more conjunctions than this in normal form are not analysed.
MAX_CLAUSES = 256
# A `choose` branch is compared with at most this many branches above it (W0251).
MAX_EARLIER = 32

Lit: TypeAlias = tuple[ast.Predicate, bool]  # a predicate, and False when it is negated
Clause: TypeAlias = tuple[Lit, ...]
SinglePath = Callable[[tuple[str, ...]], bool]
Interval: TypeAlias = tuple[Any, bool, Any, bool]  # low, low included, high, high included

_INF = math.inf
_REALS: list[Interval] = [(-_INF, False, _INF, False)]
_FLIP = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


# ---- normal form -------------------------------------------------------------


def _dnf(expr: ast.Expr, positive: bool = True) -> list[Clause] | None:
    """The conjunctions whose disjunction is `expr` (or its negation); None when too many."""
    if isinstance(expr, ast.Not):
        return _dnf(expr.operand, not positive)
    if isinstance(expr, (ast.And, ast.Or)):
        parts = [_dnf(operand, positive) for operand in expr.operands]
        if any(part is None for part in parts):
            return None
        clauses: list[Clause]
        if isinstance(expr, ast.And) == positive:  # a conjunction: distribute
            clauses = [()]
            for part in parts:
                assert part is not None
                clauses = [left + right for left in clauses for right in part]
                if len(clauses) > MAX_CLAUSES:
                    return None
        else:
            clauses = [clause for part in parts if part is not None for clause in part]
        return clauses if len(clauses) <= MAX_CLAUSES else None
    return [((expr, positive),)]


def _scalar_key(value: ast.ScalarValue) -> tuple[str, ast.ScalarValue]:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    return ("string" if isinstance(value, str) else "null", value)


def _key(atom: ast.Predicate) -> tuple[Any, ...]:
    """Equal for predicates that test the same thing, wherever they are written."""
    if isinstance(atom, (ast.Compare, ast.StringTest)):
        return (type(atom).__name__, atom.path.parts, atom.op, _scalar_key(atom.value.value))
    if isinstance(atom, ast.InList):
        return ("in", atom.path.parts, atom.negated, frozenset(_scalar_key(v.value) for v in atom.values))
    if isinstance(atom, ast.InRange):
        return ("range", atom.path.parts, _scalar_key(atom.low.value), _scalar_key(atom.high.value))
    if isinstance(atom, ast.InCidr):
        return ("cidr", atom.path.parts, atom.cidr)
    if isinstance(atom, ast.Contains):
        return ("contains", atom.path.parts, _scalar_key(atom.value.value))
    if isinstance(atom, ast.RegexTest):
        return ("regex", atom.path.parts, atom.value.value)
    if isinstance(atom, ast.AnyElement):
        return ("element", atom.path.parts, _expr_key(atom.condition))
    return (type(atom).__name__, atom.path.parts)


def _expr_key(expr: ast.Expr) -> tuple[Any, ...]:
    """`_key` of a whole condition: equal for conditions written alike."""
    if isinstance(expr, (ast.And, ast.Or)):
        return (type(expr).__name__, tuple(_expr_key(e) for e in expr.operands))
    if isinstance(expr, ast.Not):
        return ("not", _expr_key(expr.operand))
    return _key(expr)


# ---- one value ---------------------------------------------------------------


def _holds(atom: ast.Predicate, value: Any) -> bool:
    """The reference's verdict on a path that yields exactly `value` (not a list)."""
    return evaluate(attrs.evolve(atom, path=ast.Path(("v",), atom.path.span)), {"v": value})


def _all_hold(literals: Sequence[Lit], value: Any) -> bool:
    return all(_holds(atom, value) == positive for atom, positive in literals)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _nonempty(interval: Interval) -> bool:
    low, low_in, high, high_in = interval
    return bool(low < high or (low == high and low_in and high_in))


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    result = []
    for a in left:
        for b in right:
            low = max(a[0], b[0])
            low_in = (a[1] or a[0] != low) and (b[1] or b[0] != low)
            high = min(a[2], b[2])
            high_in = (a[3] or a[2] != high) and (b[3] or b[2] != high)
            if _nonempty(piece := (low, low_in, high, high_in)):
                result.append(piece)
    return result


def _complement(intervals: list[Interval]) -> list[Interval]:
    """The reals outside `intervals`, which must be sorted and disjoint."""
    result = []
    low, low_in = -_INF, False
    for start, start_in, end, end_in in intervals:
        if _nonempty(gap := (low, low_in, start, not start_in)):
            result.append(gap)
        low, low_in = end, not end_in
    if _nonempty(gap := (low, low_in, _INF, False)):
        result.append(gap)
    return result


def _points(values: Sequence[ast.Scalar]) -> list[Interval]:
    numbers = sorted({v.value for v in values if _is_number(v.value)})  # type: ignore[type-var]
    return [(n, True, n, True) for n in numbers]


def _ordered(op: str, c: Any) -> list[Interval]:
    """The points `x` of the line with `x OP c`."""
    where: dict[str, list[Interval]] = {
        "==": [(c, True, c, True)],
        "!=": [(-_INF, False, c, False), (c, False, _INF, False)],
        "<": [(-_INF, False, c, False)],
        "<=": [(-_INF, False, c, True)],
        ">": [(c, False, _INF, False)],
        ">=": [(c, True, _INF, False)],
    }
    return where[op]


def _numbers_where(atom: ast.Predicate) -> list[Interval]:
    """The numbers (not NaN) for which `atom` holds, as sorted disjoint intervals."""
    if isinstance(atom, ast.Compare) and _is_number(atom.value.value):
        return _ordered(atom.op, atom.value.value)
    if isinstance(atom, ast.InList):
        points = _points(atom.values)
        return _complement(points) if atom.negated else points
    if isinstance(atom, ast.InRange) and _is_number(atom.low.value) and _is_number(atom.high.value):
        interval = (atom.low.value, True, atom.high.value, True)
        return [interval] if _nonempty(interval) else []
    # Every other test is the same for all numbers (false for string tests, for instance).
    return list(_REALS) if _holds(atom, 0) else []


def _possible_on_line(literals: Sequence[Lit], where: Callable[[ast.Predicate], list[Interval]]) -> bool:
    """Whether one point of the real line satisfies every literal, `where` giving the
    intervals on which an atom holds."""
    allowed = list(_REALS)
    for atom, positive in literals:
        holds = where(atom)
        allowed = _intersect(allowed, holds if positive else _complement(holds))
        if not allowed:
            return False
    return True


def _number_possible(literals: Sequence[Lit]) -> bool:
    return _possible_on_line(literals, _numbers_where)


def _glob_text(pattern: str) -> str | None:
    """The one string a `matches` pattern without wildcards matches; None if it has any."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if pattern[i] in "*?":
            return None
        out.append(pattern[i])
        i += 1
    return "".join(out)


@attrs.define
class _Strings:
    """What the literals of one conjunction say about a string value."""

    candidates: set[str] | None = None  # the value is one of these, when known
    low: tuple[str, bool] = ("", True)  # the empty string is the least string
    high: tuple[str, bool] | None = None
    prefixes: list[str] = attrs.Factory(list)
    not_prefixes: list[str] = attrs.Factory(list)
    suffixes: list[str] = attrs.Factory(list)
    not_suffixes: list[str] = attrs.Factory(list)

    def member(self, values: set[str]) -> None:
        self.candidates = values if self.candidates is None else self.candidates & values

    def bound(self, op: str, text: str) -> None:
        if op in (">", ">="):
            if text > self.low[0] or (text == self.low[0] and op == ">"):
                self.low = (text, op == ">=")
        elif self.high is None or text < self.high[0] or (text == self.high[0] and op == "<"):
            self.high = (text, op == "<=")


def _string_possible(literals: Sequence[Lit]) -> bool:
    known = _Strings()
    for atom, positive in literals:
        value = atom.value.value if isinstance(atom, (ast.Compare, ast.StringTest, ast.Contains)) else None
        if isinstance(atom, ast.Compare) and isinstance(value, str):
            if atom.op in ("==", "!="):
                if (atom.op == "==") == positive:
                    known.member({value})
            else:
                known.bound(atom.op if positive else _FLIP[atom.op], value)
        elif isinstance(atom, ast.InList):
            if atom.negated != positive:  # the value is one of the strings listed
                known.member({v.value for v in atom.values if isinstance(v.value, str)})
        elif isinstance(atom, ast.StringTest) and isinstance(value, str):
            if atom.op == "startswith":
                (known.prefixes if positive else known.not_prefixes).append(value)
            elif atom.op == "endswith":
                (known.suffixes if positive else known.not_suffixes).append(value)
            elif atom.op == "matches" and positive and (exact := _glob_text(value)) is not None:
                known.member({exact})
        elif isinstance(atom, (ast.Compare, ast.InRange)) and _holds(atom, "") != positive:
            return False  # against a number or a boolean, or a range: the same for every string, and false
    # Every candidate is tried against every literal: exact.
    if known.candidates is None and known.high is not None and known.high[0] == known.low[0]:
        known.candidates = {known.low[0]} if known.high[1] and known.low[1] else set()
    if known.candidates is not None:
        return any(_all_hold(literals, text) for text in known.candidates)
    # Otherwise each family of constraints on its own; failing one proves it impossible.
    if known.high is not None and known.high[0] < known.low[0]:
        return False
    return _affixes_possible(known.prefixes, known.not_prefixes, str.startswith) and _affixes_possible(
        known.suffixes, known.not_suffixes, str.endswith)


def _affixes_possible(required: list[str], excluded: list[str], has: Callable[[str, str], bool]) -> bool:
    longest = max(required, key=len, default="")
    if not all(has(longest, affix) for affix in required):
        return False  # two prefixes (or suffixes) that no string has both of
    return not any(has(longest, affix) for affix in excluded)


def _micros(text: Any) -> int | None:
    """A timestamp as microseconds since the epoch (exact: equal instants, equal numbers)."""
    moment = instant(text)
    return None if moment is None else (moment - _EPOCH) // _MICROSECOND


def _instants_where(atom: ast.Predicate) -> list[Interval]:
    """The instants (as `_micros`) for which a timestamp comparison holds, as sorted disjoint
    intervals: over the reals, which only ever finds more room than the microseconds have."""
    if isinstance(atom, ast.Compare):
        c = _micros(atom.value.value)
        if c is None:  # not a timestamp: E0206's business; like a value of another kind
            return list(_REALS) if atom.op == "!=" else []
        return _ordered(atom.op, c)
    assert isinstance(atom, ast.InList)
    found = {_micros(v.value) for v in atom.values}
    points: list[Interval] = [(n, True, n, True) for n in sorted(m for m in found if m is not None)]
    return _complement(points) if atom.negated else points


def _holds_off_instants(atom: ast.Predicate) -> bool:
    """A timestamp comparison's verdict on every value that is not a timestamp."""
    if isinstance(atom, ast.Compare):
        return atom.op == "!="
    assert isinstance(atom, ast.InList)
    return atom.negated


def _instant_possible(literals: Sequence[Lit]) -> bool:
    """Whether one instant satisfies every literal, all timestamp comparisons."""
    return _possible_on_line(literals, _instants_where)


def _value_possible(literals: Sequence[Lit], stamps: Stamps = frozenset()) -> bool:
    """Whether one value (of any kind; not a list) satisfies every literal."""
    instants = [(atom, positive) for atom, positive in literals if is_timestamp_comparison(atom, stamps)]
    if instants:
        rest = [(atom, positive) for atom, positive in literals if not is_timestamp_comparison(atom, stamps)]
        # A value that is no timestamp: each timestamp comparison is as on a value of another kind.
        fixed = all(_holds_off_instants(atom) == positive for atom, positive in instants)
        return (fixed and _value_possible(rest)) or _instant_possible(instants)
    return (
        _all_hold(literals, {})  # objects and NaN: one verdict for them all
        or any(_all_hold(literals, b) for b in (True, False))
        or _number_possible(literals)
        or _string_possible(literals)
    )


# ---- one conjunction ---------------------------------------------------------


def _opaque(atom: ast.Predicate, single: bool) -> bool:
    """Tests left out of the value reasoning: comparisons with null (`W0010`'s business), and
    `contains` where the value may be a list (membership, not a test of one element)."""
    if isinstance(atom, ast.Compare) and atom.value.value is None and atom.op != "!=":
        return True
    return isinstance(atom, ast.Contains) and not single


def _plainly_possible(atom: ast.Predicate) -> bool:
    """Whether some value passes `atom` alone, seen from its form (a shortcut: False only
    means "try values")."""
    if isinstance(atom, ast.Compare):
        return atom.op == "==" and atom.value.value is not None and atom.value.value == atom.value.value
    if isinstance(atom, ast.InList):
        return not atom.negated and any(v.value is not None and v.value == v.value for v in atom.values)
    if isinstance(atom, ast.StringTest):
        return atom.op in ("startswith", "endswith", "equals_ignore_case", "startswith_ignore_case",
                           "endswith_ignore_case")
    if isinstance(atom, ast.InRange):
        low, high = atom.low.value, atom.high.value
        return _is_number(low) and _is_number(high) and low <= high  # type: ignore[operator]
    return False


def _possible(clause: Sequence[Lit], single: SinglePath, stamps: Stamps) -> bool:
    """Whether some event satisfies every literal of the conjunction; True when unsure."""
    if all(positive and _plainly_possible(atom) for atom, positive in clause) and len(
            {atom.path.parts for atom, _ in clause}) == len(clause):
        return True  # the common case, as the loop below finds it: tests of distinct paths, each passed by some value
    if not all(positive for _, positive in clause):  # (a test and its negation: only with one negated)
        seen = {(_key(atom), positive) for atom, positive in clause}
        if any((key, not positive) in seen for key, positive in seen):
            return False
    present: set[tuple[str, ...]] = set()
    missing: set[tuple[str, ...]] = set()
    tests: dict[tuple[str, ...], list[Lit]] = defaultdict(list)
    for atom, positive in clause:
        parts = atom.path.parts
        if isinstance(atom, (ast.IsNull, ast.AnyElement)):
            continue  # about nulls and about one element at once: left out (never a false warning)
        if isinstance(atom, (ast.Exists, ast.Missing)):
            (present if positive == isinstance(atom, ast.Exists) else missing).add(parts)
            continue
        if positive:
            present.add(parts)
        tests[parts].append((atom, positive))
    if any(path[: len(gone)] == gone for gone in missing for path in present):
        return False
    for parts, literals in tests.items():
        if len(literals) == 1 and literals[0][1] and _plainly_possible(literals[0][0]):
            continue  # the common case, without trying values: one test, that some value passes
        one = single(parts)
        usable = [(atom, positive) for atom, positive in literals if not _opaque(atom, one)]
        if one:
            # One value, or none (then every negated test holds and no positive one is here).
            if parts in present and not _value_possible(usable, stamps):
                return False
            continue
        # Several values: each positive test needs an element that fails every negated test.
        negated = [(atom, positive) for atom, positive in usable if not positive]
        if any(not _value_possible([(atom, True), *negated], stamps) for atom, positive in usable if positive):
            return False
    return True


def _never(expr: ast.Expr, single: SinglePath, stamps: Stamps) -> list[Clause] | None:
    """The normal form of `expr` when it is provably never true, else None."""
    clauses = _dnf(expr)
    if clauses is None or any(_possible(clause, single, stamps) for clause in clauses):
        return None
    return clauses


# ---- schemas -----------------------------------------------------------------


def _single_in(schema: ast.ObjectType, parts: tuple[str, ...]) -> bool:
    kind: ast.Type = schema
    for part in parts:
        if not isinstance(kind, ast.ObjectType):
            return False
        field = next((f for f in kind.fields if f.name.text == part), None)
        if field is None:
            return False
        kind = field.type
    return not isinstance(kind, ast.ListType) and not (isinstance(kind, ast.ScalarType) and kind.name == "any")


def _single_paths(project: Project, patterns: Sequence[ast.EventPattern]) -> SinglePath:
    """Which paths yield at most one value in every event a route on `patterns` may receive."""
    schemas = []
    for pattern in patterns:
        decl = None if pattern.is_glob else project.events.get(pattern.text)
        if decl is None or decl.schema is None:
            return lambda parts: False
        schemas.append(decl.schema)
    return lambda parts: all(_single_in(schema, parts) for schema in schemas)


# ---- reporting ---------------------------------------------------------------


def _source(project: Project, span: Span) -> str:
    source = project.sources.get(span.file)
    return " ".join(source.text[span.start:span.end].split()) if source else ""


def _literal_text(project: Project, atom: ast.Predicate, positive: bool) -> str:
    text = _source(project, atom.span)
    if positive:
        return text
    return f"not {text}" if text.startswith("(") and text.endswith(")") else f"not ({text})"


def _why(project: Project, clauses: list[Clause], single: SinglePath, stamps: Stamps) -> str:
    if len(clauses) > 1:
        return "none of the alternatives joined by `or` can be true"
    core = list(clauses[0])
    i = 0
    while i < len(core):  # drop what is not needed for the contradiction
        trial = core[:i] + core[i + 1:]
        if trial and not _possible(trial, single, stamps):
            core = trial
        else:
            i += 1
    texts = [f"`{_literal_text(project, atom, positive)}`" for atom, positive in core]
    if len(texts) == 1:
        return f"no event satisfies {texts[0]}"
    joined = ", ".join(texts[:-1]) + f" and {texts[-1]}"
    return f"{joined} cannot all be true" if len(texts) > 2 else f"{joined} cannot both be true"


def _route(project: Project, route: ast.RouteDecl, stamps: Stamps) -> list[Diagnostic]:
    if route.when is None:
        return []
    single = _single_paths(project, route.on)
    clauses = _never(route.when, single, stamps)
    if clauses is None:
        return []
    return [warning("W0250", f"the condition of route `{route.name.text}` is never true", route.when.span,
                    "never true", f"{_why(project, clauses, single, stamps)}: the route never delivers")]


def _choose(project: Project, choose: ast.ChooseDecl, stamps: Stamps) -> list[Diagnostic]:
    single = _single_paths(project, choose.on)
    diagnostics = []
    earlier: list[ast.Expr] = []
    for branch in choose.branches:
        when = branch.when
        if when is None:
            continue
        clauses = _never(when, single, stamps)
        if clauses is not None:
            diagnostics.append(warning(
                "W0250", f"this branch of choose `{choose.name.text}` is never taken: its condition is never true",
                when.span,
                "never true", f"{_why(project, clauses, single, stamps)}: this branch is never taken"))
        elif (shadow := _shadowed(when, earlier, single, stamps)) is not None:
            related = [Related(e.span, "takes them first") for e in shadow]
            above = "the branch above takes" if len(shadow) == 1 else "the branches above take"
            diagnostics.append(warning(
                "W0251", f"this branch of choose `{choose.name.text}` is never taken", when.span,
                f"{above} every event this matches",
                "the first branch that holds wins: put the more specific condition first, or remove this branch",
                related))
        earlier.append(when)
    return diagnostics


def _shadowed(when: ast.Expr, earlier: list[ast.Expr], single: SinglePath, stamps: Stamps) -> list[ast.Expr] | None:
    """The earlier conditions that together hold whenever `when` does, if provably so. Only
    the MAX_EARLIER branches just above are compared one by one, and all of them together
    only when there are no more: a choose of n branches costs n * MAX_EARLIER comparisons,
    not n * n (3,000 branches took 5 minutes)."""
    if len(earlier) > MAX_EARLIER:
        earlier = earlier[-MAX_EARLIER:]
        together = False
    else:
        together = len(earlier) > 1
    for other in earlier:
        if _never(ast.And((when, ast.Not(other, other.span)), when.span), single, stamps) is not None:
            return [other]
    if together:
        rest = tuple(ast.Not(other, other.span) for other in earlier)
        if _never(ast.And((when, *rest), when.span), single, stamps) is not None:
            return earlier
    return None


def check_predicates(project: Project) -> list[Diagnostic]:
    """`when` conditions that are never true (`W0250`) and `choose` branches never taken (`W0251`)."""
    diagnostics = []
    stamps = project_timestamp_paths(project)
    for route in project.routes.values():
        diagnostics.extend(_route(project, route, stamps[route.name.text]))
    for choose in project.chooses.values():
        diagnostics.extend(_choose(project, choose, stamps[choose.name.text]))
    return diagnostics
