"""`check_predicates` never cries wolf: what it calls never true, the reference never finds true.

Random conditions over one or two fields (and a field below one of them), on an open event
(any value, lists included) and on a closed schema (one value per field). Whenever the pass
says a `when` is never true, the reference interpreter must be false on every event of a
large set built around the literals the conditions use, and on random ones; whenever it says
a `choose` branch is shadowed, every event that passes the branch must pass an earlier one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import interlock
from interlock.compiler.check_predicates import check_predicates
from interlock.compiler.reference import evaluate
from interlock.dsl import ast, load_project

OPEN = "event e.x\n"
CLOSED = "event e.x { a: float?, b: string?, o: { c: float? }? }\n"
TARGETS = "target t { on_exhausted drop }\ntarget u { on_exhausted drop }\n"

NUMBERS = ["-1", "0", "1", "2", "2.5"]
STRINGS = ['""', '"a"', '"ab"', '"b"']
LITERALS = [*NUMBERS, *STRINGS, "true", "false"]
TEXTS = ['""', '"a"', '"b"', '"ab"', '"a*"', '"?"']

MISSING = object()
SCALARS: list[Any] = [-2, -1, 0, 0.5, 1, 1.5, 2, 2.5, 3, "", "a", "aa", "ab", "abc", "b", "ba", "c", "A", "a*",
                      "10.1.2.3", True, False, {}, math.nan]
FEW: list[Any] = [-1, 1, 2, 2.5, "", "a", "ab", "b", True]


def _atoms(paths: list[str]) -> st.SearchStrategy[str]:
    path = st.sampled_from(paths)
    lits = st.lists(st.sampled_from(LITERALS), max_size=3).map(", ".join)
    return st.one_of(
        st.builds("{} {} {}".format, path, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
                  st.sampled_from([*LITERALS, "null"])),
        st.builds("{} in [{}]".format, path, lits),
        st.builds("{} not in [{}]".format, path, lits),
        st.builds("any {} in [{}]".format, path, lits),
        st.builds("{} in {}..{}".format, path, st.sampled_from(NUMBERS), st.sampled_from(NUMBERS)),
        st.builds("exists {}".format, path),
        st.builds("missing {}".format, path),
        st.builds("{} {} {}".format, path, st.sampled_from(["startswith", "endswith", "matches", "equals_ignore_case"]),
                  st.sampled_from(TEXTS)),
        st.builds("{} contains {}".format, path, st.sampled_from(['"a"', "1", "true"])),
        st.builds('{} in cidr "10.0.0.0/8"'.format, path),
    )


def _conditions(paths: list[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        _atoms(paths),
        lambda inner: st.one_of(
            inner.map("not ({})".format),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(" + " and ".join(xs) + ")"),
            st.lists(inner, min_size=2, max_size=2).map(lambda xs: "(" + " or ".join(xs) + ")"),
        ),
        max_leaves=4,
    )


def _fields(schema: str) -> tuple[list[str], list[str]]:
    """Two top-level fields and a path below one of the fields, in the event's shape."""
    return (["a", "b", "o.c"], ["a", "b", "o"]) if schema == CLOSED else (["a", "b", "a.c"], ["a", "b"])


def _values(schema: str, field: str) -> list[Any]:
    """Every value tried for one top-level field: one value each under the closed schema,
    lists and objects too on the open event."""
    if schema == CLOSED:
        if field == "o":
            return [MISSING, None, {}, *({"c": v} for v in SCALARS)]
        return [MISSING, None, *SCALARS]
    pairs = [list(p) for p in itertools.combinations(FEW, 2)]
    return [MISSING, None, *SCALARS, [], *([v] for v in SCALARS), *pairs,
            *({"c": v} for v in SCALARS), *([{"c": x}, {"c": y}] for x, y in itertools.combinations(FEW, 2))]


def _events(schema: str, used: set[str]) -> Iterator[dict[str, Any]]:
    fields = [f for f in _fields(schema)[1] if f in used]
    for combination in itertools.product(*(_values(schema, f) for f in fields)):
        yield {f: v for f, v in zip(fields, combination, strict=True) if v is not MISSING}


def _used(condition: str, schema: str) -> set[str]:
    words = set(condition.replace("(", " ").replace(")", " ").split())
    return {f for f in _fields(schema)[1] if f in words or any(w.startswith(f + ".") for w in words)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("predicates")


def _project_when(workdir: Path, text: str) -> tuple[list[str], list[ast.Expr]]:
    path = workdir / "p.route"
    path.write_text(text)
    project = load_project([str(path)])
    assert project.ok, project.diagnostics
    codes = [f"{d.code}:{d.span.line}" for d in check_predicates(project)]
    whens: list[ast.Expr] = [r.when for r in project.routes.values() if r.when is not None]
    for choose in project.chooses.values():
        whens.extend(b.when for b in choose.branches if b.when is not None)
    return codes, whens


random_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3), st.sampled_from(["", "a", "ab", "b"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.fixed_dictionaries({}, optional={"c": inner})),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), schema=st.sampled_from([OPEN, CLOSED]))
def test_never_true_is_never_true(workdir: Path, data: st.DataObject, schema: str) -> None:
    condition = data.draw(_conditions(_fields(schema)[0]), label="when")
    codes, (when,) = _project_when(workdir, f"{schema}{TARGETS}route r {{ on e.x when {condition} to t }}\n")
    if "W0250:4" not in codes:
        return
    event("never true")
    for sample in _events(schema, _used(condition, schema)):
        assert not evaluate(when, sample), sample
    if schema == OPEN:
        for sample in data.draw(st.lists(st.fixed_dictionaries({}, optional={"a": random_values, "b": random_values}),
                                         max_size=20), label="events"):
            assert not evaluate(when, sample), sample


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), schema=st.sampled_from([OPEN, CLOSED]))
def test_a_shadowed_branch_is_never_taken(workdir: Path, data: st.DataObject, schema: str) -> None:
    first = data.draw(_conditions(_fields(schema)[0]), label="first")
    second = data.draw(_conditions(_fields(schema)[0]), label="second")
    text = f"{schema}{TARGETS}choose c {{\n  on e.x\n  when {first} to t\n  when {second} to u\n}}\n"
    codes, (when_first, when_second) = _project_when(workdir, text)
    if "W0251:7" not in codes and "W0250:7" not in codes:
        return
    event("shadowed" if "W0251:7" in codes else "never true")
    for sample in _events(schema, _used(first, schema) | _used(second, schema)):
        assert not evaluate(when_second, sample) or evaluate(when_first, sample), sample


@pytest.mark.parametrize(("condition", "schema"), [
    ("a > 10 and a < 5", CLOSED),
    ("a != 1 and a == 1", CLOSED),
    ("not (a == 1) and a == 1", OPEN),
    ("missing a and a.c == 1", OPEN),
    ("a in 3..1", OPEN),
    ("b startswith \"x\" and b startswith \"y\"", CLOSED),
])
def test_the_pass_does_find_contradictions(workdir: Path, condition: str, schema: str) -> None:
    codes, _ = _project_when(workdir, f"{schema}{TARGETS}route r {{ on e.x when {condition} to t }}\n")
    assert codes == ["W0250:4"]


@pytest.mark.parametrize(("condition", "schema"), [
    ("a > 10 and a < 5", OPEN),          # a: [11, 4]
    ("a != 1 and a == 1", OPEN),         # a: [1, 2]
    ("not (a > 1) and not (a <= 1)", CLOSED),   # a missing
    ("a == 1 or a == 2", CLOSED),
])
def test_the_pass_accepts_what_can_hold(workdir: Path, condition: str, schema: str) -> None:
    codes, _ = _project_when(workdir, f"{schema}{TARGETS}route r {{ on e.x when {condition} to t }}\n")
    assert codes == []


def test_a_long_choose_is_checked_in_linear_time(tmp_path: Path) -> None:
    """W0251 compared every branch with every branch above it, and with all of them together:
    a choose of 3,000 branches took 5 minutes. Each branch is now compared with the 32 just
    above (issue 15: no pass quadratic in routes); what is found there is still reported."""
    from interlock.compiler import check_predicates

    branches = " ".join(f'when tier == "t{i}" and n > {i} to t' for i in range(200))
    (tmp_path / "p.route").write_text(
        "event e { tier: string, n: int }\ntarget t { mode sync }\n"
        f'choose c {{ on e {branches} when tier == "t150" and n > 151 to t }}\n')
    compared = []
    original = check_predicates._never

    def counting(*args: object) -> object:
        compared.append(1)
        return original(*args)  # type: ignore[arg-type]

    check_predicates._never = counting  # type: ignore[assignment]
    try:
        found = [(d.code, d.message) for d in interlock.check(str(tmp_path))]
    finally:
        check_predicates._never = original
    assert len(compared) <= 201 * (check_predicates.MAX_EARLIER + 2)
    assert [code for code, _ in found] == []  # t150 is 51 branches above the last: not compared
    branches = " ".join(f'when tier == "t{i}" and n > {i} to t' for i in range(200))
    (tmp_path / "p.route").write_text(
        "event e { tier: string, n: int }\ntarget t { mode sync }\n"
        f'choose c {{ on e {branches} when tier == "t190" and n > 191 to t }}\n')
    assert [d.code for d in interlock.check(str(tmp_path))] == ["W0251"]  # 10 above: found
