"""The compiled router agrees with the reference interpreter, on random projects and events.

This is what lets anyone trust the dispatch tables: the fast code is checked against the
slow, obviously correct code on whatever hypothesis can think of — missing fields, `5`
against `5.0`, booleans against numbers, lists at the end of a path and on the way,
globs, `choose` first-match, `not` around missing fields.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matching_modes import anchors_only

from interlock.compiler.artifact import build_artifact
from interlock.compiler.reference import route
from interlock.dsl import load_project
from interlock.runtime.router import Router

TARGETS = [f"t{i}" for i in range(6)]
PATTERNS = ["o.a", "o.b", "o.*", "**", "p.a", "o.**", "*.a"]
EVENT_TYPES = ["o.a", "o.b", "p.a", "o.c", "o.a.x", "q"]  # o.c, o.a.x and q are in no exact `on`
FIELDS = ["a", "b", "c", "tags", "items.sku", "n.x", "`c.d`", "items.`q`"]
ELEMENT_FIELDS = ["sku", "q", "x", "`c.d`"]  # inside `any items { ... }`, `any n { ... }`

# Numbers past a float's 53 bits: 2**53 as a float, 2**53 + 1 (which no float is), 10**29, 1.5e308.
_BIG_LITERALS = ["9007199254740992.0", "9007199254740993", "-9007199254740993", "100000000000000000000000000000",
                 "1.5e308", "-1.5e308"]
_scalar_literal = st.one_of(
    st.integers(-3, 5).map(str),
    st.sampled_from(["5.0", "2.5", "-1.5", "true", "false", '"a"', '"b"', '"EU-1"', '""', '"5"', *_BIG_LITERALS]),
)
_number = st.one_of(st.integers(-3, 5).map(str), st.sampled_from(["2.5", "0.0", "5.0", *_BIG_LITERALS]))
_string = st.sampled_from(['"a"', '"EU-"', '"E"', '"b"', '""', '"EU-1"', '"A"', '"eu-"', '"STRASSE"', '"ß"'])
_regex = st.sampled_from(["E.*", "EU-[0-9]+", "a|b", "(?i)eu-.*", "", "[A-Z]", "EU-1|US-.", "E?U?-?1"])


@st.composite
def _atom(draw: st.DrawFn, fields: list[str] = FIELDS, depth: int = 0) -> str:
    field = draw(st.sampled_from(fields))
    form = draw(st.integers(0, 15))
    if form == 0:
        return f"{field} {draw(st.sampled_from(['==', '!=', '<', '<=', '>', '>=']))} {draw(_scalar_literal)}"
    if form == 1:
        return f"{field} in [{', '.join(draw(st.lists(_scalar_literal, min_size=1, max_size=3)))}]"
    if form == 2:
        return f"{field} not in [{', '.join(draw(st.lists(_scalar_literal, min_size=1, max_size=3)))}]"
    if form == 3:
        bounds = st.one_of(st.integers(-2, 5), st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 10**29]))
        low, high = sorted([draw(bounds), draw(bounds)])
        return f"{field} in {low}..{high}"
    if form == 4:
        return f"exists {field}"
    if form == 5:
        return f"missing {field}"
    if form == 6:
        return f"{field} {draw(st.sampled_from(['startswith', 'endswith', 'equals_ignore_case']))} {draw(_string)}"
    if form == 7:
        return f"{field} contains {draw(st.one_of(_string, _number))}"
    if form == 8:
        return f"any {field} in [{', '.join(draw(st.lists(_scalar_literal, min_size=1, max_size=3)))}]"
    if form == 9:
        return f'{field} matches "{draw(st.sampled_from(["E*", "*-1", "?", "a", "*"]))}"'
    if form == 10:
        return f"{field} == {draw(_number)}"
    if form == 12:
        return f"{field} {draw(st.sampled_from(['startswith_ignore_case', 'endswith_ignore_case']))} {draw(_string)}"
    if form == 13:
        return f'{field} matches regex "{draw(_regex)}"'
    if form == 14:
        return f"{field} is null"
    if form == 15 and depth < 2:  # one element passes every test of the group
        inner = draw(st.lists(_atom(ELEMENT_FIELDS, depth + 1), min_size=1, max_size=3))
        joiner = draw(st.sampled_from([" and ", " or "]))
        return f"any {draw(st.sampled_from(['items', 'n', 'tags', 'items.n']))} {{ {joiner.join(inner)} }}"
    return f"{field} > {draw(_number)}"


@st.composite
def _condition(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 2 or draw(st.booleans()):
        return draw(_atom())
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"not ({draw(_condition(depth + 1))})"
    parts = draw(st.lists(_condition(depth + 1), min_size=2, max_size=3))
    return "(" + f" {kind} ".join(parts) + ")"


@st.composite
def _project(draw: st.DrawFn) -> str:
    lines = [f"target {t} {{ mode async, on_exhausted drop }}" for t in TARGETS]
    for number in range(draw(st.integers(1, 8))):
        on = ", ".join(draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2, unique=True)))
        when = f" when {draw(_condition())}" if draw(st.integers(0, 4)) else ""
        to = ", ".join(draw(st.lists(st.sampled_from(TARGETS), min_size=1, max_size=2, unique=True)))
        lines.append(f"route r{number} {{ on {on}{when} to {to} }}")
    for number in range(draw(st.integers(0, 2))):
        on = draw(st.sampled_from(PATTERNS))
        branches = [f"when {draw(_condition())} to {draw(st.sampled_from(TARGETS))}"
                    for _ in range(draw(st.integers(1, 3)))]
        if draw(st.booleans()):
            branches.append(f"otherwise to {draw(st.sampled_from(TARGETS))}")
        lines.append(f"choose c{number} {{ on {on} " + " ".join(branches) + " }")
    return "\n".join(lines) + "\n"


_value: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.sampled_from([5.0, 2.5, 0.0, -1.5, float("nan")]),
    # integers of any size compare exactly: 2**53 + 1 is not the float 2**53, 10**400 is more than any float
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 9007199254740992.0, 10**29, 10**400, -(10**400), 1.5e308]),
    st.sampled_from(["a", "b", "EU-1", "E", "", "5", "A", "US-2", "eu-1", "Straße", "STRASSE", "\ud800"]),
)
_element = st.fixed_dictionaries({}, optional={"sku": _value, "q": _value, "c.d": _value,
                                               "n": st.fixed_dictionaries({}, optional={"x": _value, "sku": _value})})
_data = st.fixed_dictionaries({}, optional={
    "a": _value, "b": _value, "c": st.one_of(_value, st.lists(_value, max_size=3)),
    "tags": st.one_of(st.lists(_value, max_size=4), _value, st.lists(st.lists(_value, max_size=3), max_size=2)),
    "items": st.one_of(st.lists(_element, max_size=3), _value, _element,
                       st.lists(st.lists(_element, max_size=2), max_size=2)),  # (lists within lists are entered too)
    "c.d": st.one_of(_value, st.lists(_value, max_size=2)),
    "n": st.one_of(st.fixed_dictionaries({}, optional={"x": _value, "c.d": _value}), st.lists(
        st.fixed_dictionaries({}, optional={"x": _value, "sku": _value}), max_size=2), _value),
})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_project(), st.lists(st.tuples(st.sampled_from(EVENT_TYPES), _data), min_size=1, max_size=6))
def test_compiled_matching_equals_the_reference(text: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.route"
        path.write_text(text)
        project = load_project([str(path)])
        assert [d for d in project.diagnostics if d.is_error] == [], text
        artifact = build_artifact(project)
    # the artifact is data: it survives JSON
    router = Router(json.loads(json.dumps(artifact)))
    with anchors_only():  # the same tables matched by their anchors, as a table of many rules is
        anchored = Router(json.loads(json.dumps(artifact)))
    routes, chooses = list(project.routes.values()), list(project.chooses.values())
    for event_type, data in events:
        assert router.match(event_type, data) == route(routes, chooses, event_type, data), (event_type, data)
        assert set(router.deliveries(event_type, data)) == router.match(event_type, data), (event_type, data)
        assert anchored.match(event_type, data) == router.match(event_type, data), (event_type, data)
        assert set(anchored.deliveries(event_type, data)) == router.match(event_type, data), (event_type, data)
        explained = {t for e in router.explain(event_type, data) for t in e.targets}
        assert explained == router.match(event_type, data)
