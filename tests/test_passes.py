"""Every checking pass against its fixtures: data, one line of test code per pass.

For a pass `NAME` (its function's name), `tests/fixtures/passes/NAME.route` is a project
on which it reports nothing, and `NAME__invalid.route` one where each line that should be
reported ends with `# expect: CODE` (or `# expect: CODE, CODE`): the pass must report
exactly those codes, at exactly those lines (where each diagnostic's span starts).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import interlock
from interlock.compiler.pipeline import PASSES
from interlock.dsl import Span, load_project

FIXTURES = Path(__file__).parent / "fixtures" / "passes"
_EXPECT = re.compile(r"#\s*expect:\s*([A-Z]\d{4}(?:\s*,\s*[A-Z]\d{4})*)\s*$")
NAMES = [p.__name__ for p in PASSES]
BY_NAME = {p.__name__: p for p in PASSES}


def _run(name: str, suffix: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    path = FIXTURES / f"{name}{suffix}.route"
    project = load_project([str(path)])
    assert project.diagnostics == (), f"{path.name} must pass the front end"
    found = sorted((d.span.line, d.code) for d in BY_NAME[name](project))
    expected = sorted(
        (number, code.strip())
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (match := _EXPECT.search(line))
        for code in match.group(1).split(",")
    )
    return found, expected


@pytest.mark.parametrize("name", NAMES)
def test_pass_accepts_its_cases(name: str) -> None:
    found, _ = _run(name, "")
    assert found == []


@pytest.mark.parametrize("name", NAMES)
def test_pass_catches_its_invalid_cases(name: str) -> None:
    found, expected = _run(name, "__invalid")
    assert expected, "an __invalid fixture must expect something"
    assert found == expected


def test_every_fixture_belongs_to_a_pass() -> None:
    stems = {p.stem.removesuffix("__invalid") for p in FIXTURES.glob("*.route")}
    assert stems == set(NAMES)


def test_no_warning_is_built_on_a_predicate_found_wrong(tmp_path: Path) -> None:
    """`when at > "yesterday"` on a timestamp is E0206; it is not also `W0250 never true` (from
    issue 14: the warning came on top of the real error)."""
    path = tmp_path / "p.route"
    path.write_text('event e.x { at: timestamp }\ntarget t { on_exhausted drop }\n'
                    'route r { on e.x when at > "yesterday" to t }\n'
                    'route s { on e.x when at > "2026-01-01T00:00:00Z" and at < "2025-01-01T00:00:00Z" to t }\n')
    found = [(d.code, d.span.line) for d in interlock.check(str(path))]
    assert found == [("E0206", 3), ("W0250", 4)]  # (the condition that is only never true still warns)


def test_no_branch_warning_is_built_on_an_earlier_branch_found_wrong(tmp_path: Path) -> None:
    """W0251 says an earlier branch takes every event a later one matches; when that earlier
    branch's condition is an error (`tier != 5` on a string), the warning is built on it and
    goes too (found by a review: the warning's own span held no error)."""
    path = tmp_path / "p.route"
    path.write_text('event e.x { tier: string }\ntarget t { on_exhausted drop }\ntarget u { on_exhausted drop }\n'
                    'choose c { on e.x\n  when tier != 5 to t\n  when tier == "gold" to u }\n'
                    'choose d { on e.x\n  when tier != "x" to t\n  when tier == "gold" to u }\n')
    found = [(d.code, d.span.line) for d in interlock.check(str(path))]
    assert found == [("E0202", 5), ("W0251", 9)]


def test_one_target_with_two_payloads_is_reported_naming_both_routes(tmp_path: Path) -> None:
    """Two routes delivering one event to one target with different transforms: the runtime uses
    the first declared one's payload, so the other is reported, naming both (issue 14: the first
    declared silently won)."""
    path = tmp_path / "p.route"
    path.write_text('event e.x { id: string, n: float }\ntarget t { mode sync }\n'
                    'route plain { on e.x to t }\n'
                    'route slim { on e.* to t with { id: id } }\n'
                    'route big { on e.x when n > 5 to t with { big: id } }\n')
    found = interlock.check(str(path))
    assert [(d.code, d.span.line, d.span.column) for d in found] == [("E0260", 4, 24), ("W0261", 5, 34)]
    certain, maybe = found
    assert "route `plain` and route `slim`" in certain.message
    assert [(r.span.line, r.span.column) for r in certain.related] == [(3, 25)]
    assert "route `plain` and route `big`" in maybe.message
    with pytest.raises(interlock.CompileError, match="1 error"):
        interlock.load(str(path))


def test_deliveries_beside_a_long_choose_are_compared_in_linear_time(tmp_path: Path) -> None:
    """Each branch's condition holds the negations of the branches before it; built for every
    pair, in full, a route beside a 3000-branch choose took minutes."""
    import time

    from interlock.compiler.check_deliveries import check_deliveries

    branches = "\n".join(f"  when n == {i} to t with {{ x: {i} }}" for i in range(3000))
    path = tmp_path / "p.route"
    path.write_text("event e.x { n: float }\ntarget t { mode sync }\nroute r { on e.x when n > 5 to t }\n"
                    f"choose c {{ on e.x\n{branches}\n}}\n")
    project = load_project([str(path)])
    started = time.perf_counter()
    found = check_deliveries(project)
    assert time.perf_counter() - started < 10
    assert len(found) == 2994 and {d.code for d in found} == {"W0261"}  # n == 6 ... n == 2999 overlap n > 5


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 30), st.integers(0, 8)), max_size=12),
       st.tuples(st.sampled_from("abc"), st.integers(0, 30), st.integers(0, 12)))
def test_a_warning_on_a_wrong_predicate_is_found_by_bisection_as_by_a_scan(
        wrong: list[tuple[str, int, int]], outer: tuple[str, int, int]) -> None:
    """The predicates' warnings are dropped when an error lies within them. Every error against
    every warning was quadratic: 8,000 routes with a type error each checked in 15 s."""
    from interlock.compiler.pipeline import _Spans

    def span(file: str, start: int, length: int) -> Span:
        return Span(file, start, start + length, 1, start + 1, 1, start + length + 1)

    spans = [span(*w) for w in wrong]
    where = span(*outer)
    expected = any(s.file == where.file and where.start <= s.start and s.end <= where.end for s in spans)
    assert _Spans(spans).any_within(where) == expected
