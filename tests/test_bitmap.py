"""The lookups of a bitmap table (runtime/bitmap.py) that are shortcuts, each against the test it
stands for: ranges by one bisect (`ranges.half_open`), prefixes by one bisect when no prefix
starts another, and the copies that keep a table's values together (`packed`)."""

from __future__ import annotations

import bisect
import linecache
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.compiler.artifact import build_artifact
from interlock.compiler.reference import route
from interlock.dsl import load_project
from interlock.runtime.bitmap import packed
from interlock.runtime.ranges import half_open
from interlock.runtime.router import Router

_EDGE = 2.0**53
_BOUNDS = [-3, -1, 0, 1, 2.5, 3, 7, -0.0, 0.1, _EDGE - 1, -_EDGE + 1, 4503599627370495.5, 1e-300]


def _around(bound: float) -> list[Any]:
    """Numbers at and next to a bound, as ints and floats."""
    out: list[Any] = [bound, math.nextafter(bound, math.inf), math.nextafter(bound, -math.inf)]
    if float(bound).is_integer():
        out += [int(bound), int(bound) + 1, int(bound) - 1]
    return out


_VALUES = [v for b in _BOUNDS for v in _around(b)] + [2**53, 2**53 + 1, -(2**53) - 1, 10**400, -(10**400),
                                                       math.inf, -math.inf, 1.5e308, 0.0]
_range = st.tuples(st.one_of(st.none(), st.sampled_from(_BOUNDS)), st.booleans(),
                   st.one_of(st.none(), st.sampled_from(_BOUNDS)), st.booleans())


def _holds(low: Any, low_inclusive: bool, high: Any, high_inclusive: bool, x: Any) -> bool:
    return ((low is None or (x >= low if low_inclusive else x > low))
            and (high is None or (x <= high if high_inclusive else x < high)))


@settings(max_examples=400, deadline=None)
@given(st.lists(_range, min_size=1, max_size=6))
def test_one_bisect_finds_the_ranges_that_hold_a_number(ranges: list[tuple[Any, bool, Any, bool]]) -> None:
    rows = [[low, li, high, hi, number] for number, (low, li, high, hi) in enumerate(ranges)]
    found = half_open(rows, lambda rule: 1 << rule)
    assert found is not None
    bounds, masks = found
    for x in _VALUES:
        expected = sum(1 << n for n, (low, li, high, hi) in enumerate(ranges) if _holds(low, li, high, hi, x))
        assert masks[bisect.bisect_right(bounds, x)] == expected, (ranges, x)


def test_bounds_a_float_cannot_hold_exactly_keep_the_test_at_each_bound() -> None:
    for bound in (2**53, -(2**53), 2.0**53, 10**29, 1.5e308):
        assert half_open([[bound, False, None, False, 0]], lambda rule: 1) is None


def _router(text: str) -> tuple[Router, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.route"
        path.write_text(text)
        project = load_project([str(path)])
        assert [d for d in project.diagnostics if d.is_error] == []
        return Router(build_artifact(project)), project


def _source(router: Router, event_type: str) -> str:
    table = router.matcher._dispatch[event_type]
    return "".join(linecache.cache[table.__code__.co_filename][2])  # type: ignore[union-attr]


_word = st.text("ab-", min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(st.lists(_word, min_size=3, max_size=12, unique=True), st.lists(st.text("ab-c", max_size=6), max_size=20))
def test_prefixes_of_many_lengths_match_as_startswith_does(prefixes: list[str], values: list[str]) -> None:
    lines = ["event e { s: string, r: string }", "target t0 { mode async }", "target t1 { mode async }"]
    for number, prefix in enumerate(prefixes):  # every other route tests `r` too: a rule of two atoms
        extra = ' and r == "x"' if number % 2 else ""
        lines.append(f'route p{number} {{ on e when s startswith "{prefix}"{extra} to t{number % 2} }}')
    router, project = _router("\n".join(lines) + "\n")
    routes = list(project.routes.values())
    for value in [*values, *prefixes, *(p[:-1] for p in prefixes), *(p + "b" for p in prefixes)]:
        for data in ({"s": value, "r": "x"}, {"s": value}, {"s": [value, "zz"], "r": "x"}):
            assert router.match("e", data) == route(routes, [], "e", data), (prefixes, data)


def test_prefixes_of_many_lengths_none_starting_another_are_found_by_one_bisect() -> None:
    prefixes = ["P1-", "P10-", "P100-", "Q", "P2-"]
    lines = ["event e { s: string }", "target t { mode async }"]
    lines += [f'route p{n} {{ on e when s startswith "{p}" to t }}' for n, p in enumerate(prefixes)]
    router, _ = _router("\n".join(lines) + "\n")
    assert "bisect_right(" in _source(router, "e") and "x[:4]" not in _source(router, "e")
    assert router.match("e", {"s": "P10-7"}) == {"t"}
    assert router.match("e", {"s": "P1"}) == frozenset()
    # "P1-" starts "P1-X": a lookup per length instead
    lines.append('route q { on e when s startswith "P1-X" to t }')
    router, _ = _router("\n".join(lines) + "\n")
    assert "x[:4]" in _source(router, "e")


def test_a_packed_table_is_equal_and_made_of_new_objects() -> None:
    big, text, number = 2**200 + 1, "P10-", 2.5
    table = {"eq": {text: big}, "bounds": [number, -0.0], "masks": [big, 0, 1]}
    copy = packed(table)
    assert copy == table
    assert copy["eq"][text] is not big and next(iter(copy["eq"])) is not text and copy["bounds"][0] is not number
    assert math.copysign(1, copy["bounds"][1]) == -1  # -0.0 stays -0.0
