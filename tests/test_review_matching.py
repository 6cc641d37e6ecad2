"""Review of the matching changes of e8db281..f1e4706 (anchors within bitmap tables, half-open
ranges, one bisect for prefixes, packed tables, lazy predicates, the walrus type tests).

The compiled router must answer as the reference interpreter (`compiler/reference.py`) for every
project and every data value (docs/language.md §5; docs/runtime.md: `match` and `explain` "take
any data, unchecked"), and its cost per event must not follow the number of routes
(runtime/bitmap.py: "the number of routes adds nothing but the width of the masks").

Each test is one finding, with its minimal reproduction, but the last: a property test, nastier
than test_compiled_matching's, over tables big enough for the bit masks (3 to 40 rules, every
kind of atom on a few fields, both anchoring and checking), which held up.
"""

from __future__ import annotations

import decimal
import functools
import json
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matching_modes import anchors_only

from interlock.compiler.artifact import build_artifact
from interlock.compiler.reference import route
from interlock.dsl import Project, load_project
from interlock.runtime.router import Router

_TARGETS = "target t { mode async, on_exhausted drop }\ntarget u { mode async, on_exhausted drop }\n"


def _load(text: str) -> tuple[Project, Router, Router]:
    """The project, its router, and the same artifact matched by anchors only."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.route"
        path.write_text(text)
        project = load_project([str(path)])
        assert [d for d in project.diagnostics if d.is_error] == [], text
        artifact = json.loads(json.dumps(build_artifact(project)))
    router = Router(artifact)
    with anchors_only():
        anchored = Router(json.loads(json.dumps(artifact)))
    return project, router, anchored


def _expected(project: Project, event_type: str, data: Any) -> set[str]:
    return route(list(project.routes.values()), list(project.chooses.values()), event_type, data)


def _answers(router: Router, event_type: str, data: Any) -> dict[str, Any]:
    """What the router says, by way: `match`, `deliveries`, `explain` (an exception as its repr)."""
    ways: list[tuple[str, Callable[[], Any]]] = [
        ("match", lambda: set(router.match(event_type, data))),
        ("deliveries", lambda: set(router.deliveries(event_type, data))),
        ("explain", lambda: {t for e in router.explain(event_type, data) for t in e.targets})]
    out: dict[str, Any] = {}
    for name, way in ways:
        try:
            out[name] = way()
        except Exception as error:  # (an exception is an answer that differs)
            out[name] = repr(error)
    return out


# ---- 1. data of no kind whose `==` is not a bool ---------------------------------------------


class _Ambiguous:
    """A value of no kind (docs §5: "a subclass of `str` or `int` is of no kind") whose `==`
    answers something without a truth value, as a numpy array's does."""

    def __eq__(self, other: object) -> Any:
        class Elementwise:
            def __bool__(self) -> bool:
                raise ValueError("the truth value of an array with more than one element is ambiguous")

        return Elementwise()

    __hash__ = object.__hash__


@pytest.mark.parametrize("value", [decimal.Decimal("sNaN"), _Ambiguous()], ids=["Decimal-sNaN", "array-like"])
@pytest.mark.parametrize("rules", [1, 3, 1100])
@pytest.mark.parametrize("condition", ["a != 5", "b == {k} and a != 5.5", "a == 5 and b == {k}"])
def test_a_value_whose_equality_raises_is_compared_by_kind_first(value: Any, rules: int, condition: str) -> None:
    """Found by review: generated code (runtime/codegen.py `comparison`) writes `==` and `!=` with a
    number as `v == 5 and <v is a number>`: the equality first. A value of no kind is equal to
    nothing and the reference never calls its `==` (`equal` compares kinds first); the generated
    code does, and `Decimal("sNaN") == 5` raises InvalidOperation, a numpy array's `==` has no
    truth value. Minimal: `route r { on e when a != 5 to t }`, data {"a": Decimal("sNaN")}:
    the reference says {"t"}, `match` raises decimal.InvalidOperation (every table size, both
    the bit masks and the anchors). `explain` (closures) answers right."""
    text = _TARGETS + "".join(f"route r{k} {{ on e when {condition.format(k=k)} to t }}\n" for k in range(rules))
    project, router, anchored = _load(text)
    for data in ({"a": value, "b": 0}, {"a": [value], "b": 0}, {"a": [1, value], "b": 1}):
        expected = _expected(project, "e", data)
        for way, answers in (("bit masks", _answers(router, "e", data)), ("anchors", _answers(anchored, "e", data))):
            assert answers == dict.fromkeys(answers, expected), (way, data)


# ---- 2. data that is a list ------------------------------------------------------------------


@pytest.mark.parametrize("condition", ["a == 1", "not (a == 1)", "missing a", "exists a", "a in 1..2",
                                       'any items {{ sku == "A" }}', "a == {k} or b == {k}"])
@pytest.mark.parametrize("rules", [1, 3])
def test_data_that_is_a_list_is_read_as_the_reference_reads_it(condition: str, rules: int) -> None:
    """Found by review: a path is followed into a list at every step (§5 **Paths**), the first included:
    the reference reads `a` of `[{"a": 1}]` as 1. The runtime's `values_at` (runtime/predicates.py)
    does so for a path of two fields (`n.x` of `[{"n": {"x": 1}}]` is 1) but not of one: it takes
    `a` of anything but a dict as missing. Minimal: `route r { on e when a == 1 to t }`, data
    `[{"a": 1}]`: the reference says {"t"}, `match`, `deliveries` and `explain` say nothing; and
    `not (a == 1)`, `missing a` the opposite. (`publish` refuses such data; `match` and `explain`
    "take any data, unchecked", docs/runtime.md.)"""
    text = _TARGETS + "".join(f"route r{k} {{ on e when {condition.format(k=k)} to t }}\n" for k in range(rules))
    project, router, anchored = _load(text)
    for data in ([{"a": 1, "items": [{"sku": "A"}]}], [[{"a": 1}], {"b": 2}], [{"n": {"x": 1}}]):
        expected = _expected(project, "e", data)
        for way, answers in (("bit masks", _answers(router, "e", data)), ("anchors", _answers(anchored, "e", data))):
            assert answers == dict.fromkeys(answers, expected), (way, data)


# ---- 3. the cost of a bitmap match follows the routes ------------------------------------------


def _lines_run(call: Callable[[], Any]) -> int:
    """The lines of Python that `call` runs (every frame it enters, generated code included)."""
    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


_ONE_CANDIDATE = {"k": 5, "f5": 1}


def test_a_bitmap_match_does_not_visit_every_checking_field() -> None:
    """Found by review: in a bitmap table (runtime/bitmap.py `fire_source`) every field that checks some
    rule's atom costs a test `if c & CHECKING:` on each event, candidates or not. With rules that
    each check a field of their own (`kind == "k7" and flag7 == 1`: `kind` anchors them all,
    `flag7` checks rule 7 only), an event with one candidate runs a line per rule: 1024 routes,
    29 µs a match, where the same table matched by its anchors (as at 1025 routes) takes 0.46 µs
    and 22 lines, whatever the routes. (Before this change it was 100 µs: the guards were there,
    as `if EVERY & ~failed:`.) The docstring's promise, "the number of routes adds nothing but
    the width of the masks", and "a lookup per anchoring field ... plus the lookups of the other
    fields when a candidate needs them", fails."""
    runs = {}
    for rules in (40, 1000):
        text = _TARGETS + "".join(f"route g{i} {{ on e when k == {i} and f{i} == 1 to t }}\n" for i in range(rules))
        _, router, anchored = _load(text)
        assert router.match("e", _ONE_CANDIDATE) == anchored.match("e", _ONE_CANDIDATE) == {"t"}
        runs[rules] = (_lines_run(functools.partial(router.match, "e", _ONE_CANDIDATE)),
                       _lines_run(functools.partial(anchored.match, "e", _ONE_CANDIDATE)))
    (masks_40, anchors_40), (masks_1000, anchors_1000) = runs[40], runs[1000]
    assert anchors_1000 <= 2 * anchors_40  # (the anchors: 22 lines and 22)
    assert masks_1000 <= 2 * masks_40, f"bit masks: {masks_40} lines at 40 routes, {masks_1000} at 1000"


# ---- what held up: the bit masks against the reference, on nasty tables ----------------------

# Bounds where a float's neighbours and the integers part (2**53), where nextafter is subnormal,
# -0.0, an int past every float literal (10**39 has 40 characters, the most a literal may have).
_NUMBERS = ["0", "-0.0", "5e-324", "-5e-324", "1", "2.5", "-2.5", "4503599627370495.5", "9007199254740991",
            "-9007199254740991", "9007199254740992", "9007199254740993", "1e16", "1.7976931348623157e308",
            "1" + "0" * 39, "3"]
# Prefixes of many lengths, some starting others and some not ("P1-" and "P10-" do not).
_PREFIXES = ["", "P1-", "P10-", "P100-", "Q", "xyz", "ab", "ba", "P1-X", "ß", "SS", "\\ud83d\\ude00", "İ"]
_FIELDS = ["a", "b", "n.x", "items.s"]


@st.composite
def _atom(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(_FIELDS))
    number, prefix = draw(st.sampled_from(_NUMBERS)), draw(st.sampled_from(_PREFIXES))
    literal = draw(st.sampled_from([number, f'"{prefix}"', "true", "false", "null"]))
    return draw(st.sampled_from([
        f"{field} {draw(st.sampled_from(['<', '<=', '>', '>=']))} {number}",
        f"{field} in {number}..{draw(st.sampled_from(_NUMBERS))}",
        f"{field} == {literal}",
        f"{field} in [{literal}, {draw(st.sampled_from(_NUMBERS))}, \"{prefix}\"]",
        f'{field} startswith "{prefix}"',
        f'{field} startswith_ignore_case "{prefix}"',
        f"{field} > {number} and {field} <= {draw(st.sampled_from(_NUMBERS))}",
        f"not ({field} >= {number})",
        f"{field} != {literal}",
        'any items { s startswith "P1" and n > 0 }',
    ]))


@st.composite
def _project(draw: st.DrawFn) -> str:
    lines = [_TARGETS]
    for number in range(draw(st.integers(3, 40))):
        atoms = draw(st.lists(_atom(), min_size=1, max_size=3))
        joiner = draw(st.sampled_from([" and ", " and ", " or "]))
        lines.append(f"route r{number} {{ on {draw(st.sampled_from(['e', 'e', '**']))} "
                     f"when {joiner.join(f'({a})' for a in atoms)} to {draw(st.sampled_from(['t', 'u']))} }}\n")
    if draw(st.booleans()):
        branches = " ".join(f"when {draw(_atom())} to {draw(st.sampled_from(['t', 'u']))}" for _ in range(3))
        lines.append(f"choose c {{ on e {branches} otherwise to u }}\n")
    return "".join(lines)


def _around(x: float) -> list[Any]:
    out: list[Any] = [x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf)]
    if x.is_integer() and abs(x) < 1e300:
        out += [int(x), int(x) + 1, int(x) - 1]
    return out


_VALUES = [v for x in (0.0, -0.0, 5e-324, 1.0, 2.5, -2.5, 4503599627370495.5, 2.0**53 - 1, 2.0**53, 1e16, 3.0)
           for v in _around(x)]
_VALUES += [2**53 + 1, -(2**53) - 1, 10**39, 10**39 + 1, 10**400, -(10**400), math.inf, -math.inf, float("nan"),
            True, False, 1.7976931348623157e308]
_scalar = st.one_of(st.sampled_from(_VALUES), st.none(), st.lists(st.sampled_from(
    ["", "P1-", "P10-7", "P100-", "P1-X", "Q", "xyz", "ab", "ba", "b", "ss", "SSx", "strasse", "\U0001F600", "\ud83d",
     "i̇x", "P", "0", "-"]), max_size=2).map("".join))
_value = st.one_of(_scalar, st.lists(_scalar, max_size=3), st.lists(st.lists(_scalar, max_size=2), max_size=2))
_object = st.fixed_dictionaries({}, optional={"x": _value, "s": _value, "n": _value})
_data = st.fixed_dictionaries({}, optional={
    "a": _value, "b": _value, "n": st.one_of(_value, _object, st.lists(_object, max_size=2)),
    "items": st.one_of(_object, st.lists(_object, max_size=3))})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_project(), st.lists(st.tuples(st.sampled_from(["e", "f"]), _data), min_size=1, max_size=12))
def test_bit_masks_answer_as_the_reference_on_nasty_tables(text: str, events: list[tuple[str, Any]]) -> None:
    project, router, anchored = _load(text)
    for event_type, data in events:
        expected = _expected(project, event_type, data)
        assert _answers(router, event_type, data) == dict.fromkeys(("match", "deliveries", "explain"), expected), data
        assert set(anchored.match(event_type, data)) == expected, data
