"""Timestamp comparisons: instants, not text, on the runtime and on the reference interpreter.

A comparison on a path declared `timestamp` in a closed schema that the route's `on`
covers compares instants (docs/language.md, §5 "Timestamps"): `"2024-05-02T11:14:00+02:00"`
is `"2024-05-02T09:14:00Z"`, although as text it is greater than `"2024-05-02T10:00:00Z"`.
The same cases run on both implementations; a property test then compares them on random
instants written with random offsets, garbage, missing values and lists.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlock
from interlock.compiler.artifact import build_artifact, canonical_hash
from interlock.compiler.check_predicates import check_predicates
from interlock.compiler.reference import evaluate, project_timestamp_paths, route
from interlock.compiler.route_tests import run_tests
from interlock.dsl import Project, load_project
from interlock.runtime.router import Router

Match = Callable[[str, Any], frozenset[str]]

PROJECT = """
event order.created {
  id: string?
  placed_at: timestamp?
  dates: list<timestamp>?
  items: list<{ at: timestamp? }>?
}
event order.noted { placed_at: string? }   # text here, a timestamp in order.created

target after { on_exhausted drop }
target before { on_exhausted drop }
target same { on_exhausted drop }
target other { on_exhausted drop }
target listed { on_exhausted drop }
target unlisted { on_exhausted drop }
target midnight { on_exhausted drop }
target dated { on_exhausted drop }
target item { on_exhausted drop }
target item_not { on_exhausted drop }
target glob { on_exhausted drop }
target text { on_exhausted drop }
target first { on_exhausted drop }
target second { on_exhausted drop }
target rest { on_exhausted drop }

route to_after { on order.created when placed_at > "2024-05-02T10:00:00Z" to after }
route to_before { on order.created when placed_at <= "2024-05-02T10:00:00Z" to before }
route to_same { on order.created when placed_at == "2024-05-02T09:14:00Z" to same }
route to_other { on order.created when placed_at != "2024-05-02T09:14:00Z" to other }
route to_listed { on order.created when placed_at in ["2024-05-01T00:00:00Z", "2024-05-02T09:14:00+00:00"] to listed }
route to_unlisted { on order.created when placed_at not in ["2024-05-02T09:14:00Z"] to unlisted }
route to_midnight { on order.created when placed_at == "2024-05-03" to midnight }
route to_dated { on order.created when any dates in ["2024-05-02T09:14:00Z"] to dated }
route to_item { on order.created when items.at >= "2024-05-02T10:00:00Z" to item }
route to_item_not { on order.created when items.at not in ["2024-05-02T09:14:00Z"] to item_not }
route to_glob { on order.* when placed_at >= "2024-05-02T09:14:00Z" to glob }
route to_text { on audit.logged when placed_at > "2024-05-02T10:00:00Z" to text }   # no schema: text

choose pick {
  on order.*
  when placed_at < "2024-05-02T11:00:00+02:00" to first     # before 09:00Z
  when placed_at == "2024-05-02T09:14:00Z" to second
  otherwise to rest
}
"""

NOON_PARIS = "2024-05-02T11:14:00+02:00"  # 09:14Z


def _write(folder: Path, text: str) -> Path:
    path = folder / "p.route"
    path.write_text(text)
    return path


def _project(folder: Path, text: str) -> Project:
    project = load_project([str(_write(folder, text))])
    assert project.ok, project.diagnostics
    return project


def _reference(project: Project) -> Match:
    routes, chooses = list(project.routes.values()), list(project.chooses.values())
    stamps = project_timestamp_paths(project)
    return lambda event_type, data: frozenset(route(routes, chooses, event_type, data, stamps))


@pytest.fixture(scope="module", params=["runtime", "reference"])
def match(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Match:
    folder = tmp_path_factory.mktemp("timestamps")
    if request.param == "runtime":
        return interlock.load(str(_write(folder, PROJECT))).match
    return _reference(_project(folder, PROJECT))


def _created(match: Match, placed_at: Any) -> frozenset[str]:
    """The targets of an `order.created` whose `placed_at` is the value, without `pick`'s."""
    return match("order.created", {"placed_at": placed_at}) - {"first", "second", "rest"}


# ---- the semantics, on both implementations -------------------------------------


def test_an_offset_places_the_instant(match: Match) -> None:
    # 09:14Z: not after 10:00Z, although the text "...T11:14..." is greater than "...T10:00..."
    assert _created(match, NOON_PARIS) == {"before", "same", "listed", "glob"}
    # 12:14Z, although the text "...T07:14..." is less than "...T10:00..."
    assert _created(match, "2024-05-02T07:14:00-05:00") == {"after", "other", "unlisted", "glob"}


@pytest.mark.parametrize("written", [
    "2024-05-02T09:14:00Z", "2024-05-02T09:14:00+00:00", NOON_PARIS, "2024-05-02T04:14:00-05:00",
    "2024-05-02T09:14:00.000000Z", "2024-05-02T14:44:00+0530", "2024-05-02T09:14:00",  # no offset: UTC
    "2024-05-03T00:14:00+15:00",  # the day after, locally
    "2024-05-02t09:14:00z", "2024-05-02 09:14Z", "2024-05-02T09:14:00.000000001Z",  # RFC 3339 allows these
])
def test_equal_instants_are_equal_whatever_their_offsets(match: Match, written: str) -> None:
    assert _created(match, written) == {"before", "same", "listed", "glob"}


def test_not_equal_and_not_in(match: Match) -> None:
    assert {"other", "unlisted"} <= _created(match, "2024-05-02T09:14:01Z")
    assert not {"other", "unlisted"} & _created(match, "2024-05-02T10:14:00+01:00")


def test_in_a_list_of_literals(match: Match) -> None:
    assert "listed" in _created(match, "2024-04-30T20:00:00-04:00")  # 2024-05-01T00:00Z
    assert "listed" in _created(match, "2024-05-02T09:14:00Z")  # `+00:00` in the literal
    assert "listed" not in _created(match, "2024-05-01T00:00:00+02:00")


@pytest.mark.parametrize("garbage", [
    "yesterday", "", "2024-13-01T00:00:00Z", "09:14", 42, 2.5, True, {"at": 1},
    # what `datetime.fromisoformat` reads, but is no RFC 3339 timestamp
    "2024-05-02X09:14:00Z", "20240502T091400Z", "2024-W18-4", "2024-05-02T09Z",
    "2024-05-02T09:14+02:60", "2024-05-02T09:14-24:00", "2024-05-02T09:14:00,5Z"])
def test_a_value_that_is_no_timestamp_is_of_the_wrong_kind(match: Match, garbage: Any) -> None:
    # only `!=` and `not in` hold; the glob route compares instants for every type it receives
    assert _created(match, garbage) == {"other", "unlisted"}
    assert match("order.created", {"placed_at": garbage}) >= {"rest"}


@pytest.mark.parametrize("data", [{}, {"placed_at": None}, {"id": "o1"}])
def test_a_missing_value_is_false_for_every_comparison(match: Match, data: dict[str, Any]) -> None:
    assert match("order.created", data) == {"rest"}  # not even `!=` and `not in`


def test_lists_need_one_element(match: Match) -> None:
    assert "dated" in match("order.created", {"dates": ["nope", "2024-05-02T10:14:00+01:00"]})
    assert "dated" not in match("order.created", {"dates": ["2024-05-02T10:14:00Z"]})
    items = [{"at": "garbage"}, {"at": "2024-05-02T12:00:00+02:00"}]  # 10:00Z: `>=`
    assert {"item", "item_not"} <= match("order.created", {"items": items})
    assert "item" not in match("order.created", {"items": [{"at": "2024-05-02T11:59:59+02:00"}]})
    assert "item_not" not in match("order.created", {"items": [{"at": NOON_PARIS}]})
    assert "item_not" in match("order.created", {"items": [{"at": NOON_PARIS}, {"at": 5}]})  # any element
    assert not {"item", "item_not"} & match("order.created", {"items": []})


def test_a_list_at_the_end_of_the_path_is_its_elements(match: Match) -> None:
    # an open event of the glob route: the same comparisons, any element
    assert "glob" in match("order.legacy", {"placed_at": ["x", "2024-05-02T10:14:00+01:00"]})
    assert "glob" not in match("order.legacy", {"placed_at": ["x", "2024-05-02T10:13:59+01:00"]})


def test_a_date_alone_is_midnight_utc(match: Match) -> None:
    assert "midnight" in _created(match, "2024-05-03")
    assert "midnight" in _created(match, "2024-05-03T02:00:00+02:00")
    assert "midnight" in _created(match, "2024-05-03Z")  # E0206 reads it, so does matching
    assert "midnight" in _created(match, "2024-05-03+00:00")  # a date with an offset: its midnight there
    assert "midnight" not in _created(match, "2024-05-03T00:00:00-02:00")
    assert "after" in _created(match, "2024-05-03")


def test_an_open_type_covered_by_a_glob_compares_instants(match: Match) -> None:
    for event_type in ("order.legacy", "order.noted"):  # undeclared; declared with `placed_at: string`
        assert "glob" in match(event_type, {"placed_at": NOON_PARIS})
        # 08:14Z, although the text is greater than "...T09:14:00Z"
        assert "glob" not in match(event_type, {"placed_at": "2024-05-02T10:14:00+02:00"})
        assert "glob" not in match(event_type, {"placed_at": "never"})


def test_choose_branches_compare_instants(match: Match) -> None:
    assert match("order.legacy", {"placed_at": "2024-05-02T10:59:00+02:00"}) == {"first"}
    assert match("order.legacy", {"placed_at": NOON_PARIS}) == {"second", "glob"}
    assert match("order.legacy", {"placed_at": "2024-05-02T09:15:00Z"}) == {"rest", "glob"}
    assert match("order.legacy", {"placed_at": 7}) == {"rest"}


def test_without_a_timestamp_schema_strings_compare_as_text(match: Match) -> None:
    assert match("audit.logged", {"placed_at": NOON_PARIS}) == {"text"}  # as text: "...T11" > "...T10"


# ---- the compiled artifact --------------------------------------------------------


def _nodes(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *(n for value in node.values() for n in _nodes(value))]
    if isinstance(node, list):
        return [n for value in node for n in _nodes(value)]
    return []


def test_timestamp_comparisons_are_marked_and_never_anchors(tmp_path: Path) -> None:
    artifact = build_artifact(_project(tmp_path, PROJECT))
    dispatch = artifact["dispatch"]
    marked = [n for n in _nodes(dispatch["routes"]) if n.get("timestamp")]
    assert {n["text"] for n in marked} >= {
        'placed_at == "2024-05-02T09:14:00Z"', 'any dates in ["2024-05-02T09:14:00Z"]',
        'items.at not in ["2024-05-02T09:14:00Z"]'}
    text_route = next(r for r in dispatch["routes"] if r["name"] == "to_text")
    assert "timestamp" not in text_route["when"]
    for rule in dispatch["rules"]:
        name = dispatch["routes"][rule["route"]]["name"]
        if name == "to_text":
            continue  # `>` on a string is no anchor anyway
        assert "anchor" not in rule, name
        assert all(check["timestamp"] for check in rule["check"])


def test_an_artifact_without_the_mark_compares_text_as_before(tmp_path: Path) -> None:
    artifact = build_artifact(_project(tmp_path, PROJECT))
    for node in _nodes(artifact["dispatch"]):
        node.pop("timestamp", None)
    del artifact["integrity"]
    artifact["integrity"] = canonical_hash(artifact)
    router = Router(json.loads(json.dumps(artifact)))
    assert "after" in router.match("order.created", {"placed_at": NOON_PARIS})  # "...T11" > "...T10"
    assert "same" not in router.match("order.created", {"placed_at": NOON_PARIS})


def test_explain_shows_the_instant_verdict(tmp_path: Path) -> None:
    router = interlock.load(str(_write(tmp_path, PROJECT)))
    explained = {e.name: e for e in router.explain("order.created", {"placed_at": NOON_PARIS})}
    condition = explained["to_same"].condition
    assert explained["to_same"].matched and condition is not None and condition.verdict
    assert not explained["to_after"].matched


def test_interlock_test_uses_instants(tmp_path: Path) -> None:
    text = PROJECT + f"""
test paris {{
  send order.created {{ placed_at: "{NOON_PARIS}" }}
  expect before, same, listed, glob, second
}}
"""
    results = run_tests(_project(tmp_path, text))
    assert [r.passed for r in results] == [True], results


# ---- W0250 and W0251 reason about instants -------------------------------------------

CHECKED = """
event order.created { placed_at: timestamp, note: string? }
target a { on_exhausted drop }
target b { on_exhausted drop }
"""


def _warnings(folder: Path, text: str) -> list[str]:
    return [d.code for d in check_predicates(_project(folder, CHECKED + text))]


@pytest.mark.parametrize("condition", [
    'placed_at > "2024-05-02T11:00:00+02:00" and placed_at < "2024-05-02T10:00:00Z"',  # 09:00Z..10:00Z
    'placed_at == "2024-05-02T11:00:00+02:00" and placed_at == "2024-05-02T09:00:00Z"',
    'placed_at in ["2024-05-02T11:00:00+02:00"] and placed_at > "2024-05-02T08:59:59Z"',
    'placed_at != "2024-05-02T09:00:00Z" and placed_at not in ["2024-05-02T09:00:00Z"]',  # any other, or garbage
    'not (placed_at > "2024-05-02T09:00:00Z") and not (placed_at <= "2024-05-02T09:00:00Z")',  # garbage
])
def test_no_w0250_for_what_instants_satisfy(tmp_path: Path, condition: str) -> None:
    assert _warnings(tmp_path, f"route r {{ on order.created when {condition} to a }}\n") == []


@pytest.mark.parametrize("condition", [
    'placed_at < "2024-05-02T09:00:00Z" and placed_at > "2024-05-02T11:00:00+02:00"',
    'placed_at == "2024-05-02T11:00:00+02:00" and placed_at != "2024-05-02T09:00:00Z"',
    'placed_at in ["2024-05-02T11:00:00+02:00", "2024-05-02T12:00:00+02:00"] and placed_at > "2024-05-02T10:00:00Z"',
    'placed_at == "2024-05-02T09:00:00Z" and placed_at not in ["2024-05-02T11:00:00+02:00"]',
])
def test_w0250_for_what_no_instant_satisfies(tmp_path: Path, condition: str) -> None:
    assert _warnings(tmp_path, f"route r {{ on order.created when {condition} to a }}\n") == ["W0250"]


def test_w0251_compares_instants(tmp_path: Path) -> None:
    later_first = """choose c {
  on order.created
  when placed_at > "2024-05-02T10:00:00Z" to a
  when placed_at >= "2024-05-02T11:00:00+02:00" to b   # from 09:00Z: taken for 09:00Z..10:00Z
}
"""
    assert _warnings(tmp_path, later_first) == []  # as text, the second would look shadowed
    earlier_first = """choose c {
  on order.created
  when placed_at >= "2024-05-02T11:00:00+02:00" to a
  when placed_at > "2024-05-02T10:00:00Z" to b
}
"""
    assert _warnings(tmp_path, earlier_first) == ["W0251"]


_ATOM_LITERALS = ['"2024-05-02T09:00:00Z"', '"2024-05-02T11:00:00+02:00"', '"2024-05-02T10:00:00Z"',
                  '"2024-05-02T12:30:00+02:00"', '"2024-05-02"']
_SAMPLES: list[Any] = [None, "garbage", 5, "2024-05-02T00:00:00Z", "2024-05-02T08:59:59Z", "2024-05-02T09:00:00Z",
                       "2024-05-02T09:00:00.000001Z", "2024-05-02T09:30:00Z", "2024-05-02T10:00:00Z",
                       "2024-05-02T10:15:00Z", "2024-05-02T10:30:00Z", "2024-05-02T10:30:00.000001Z", "2024-05-03"]
_atoms = st.one_of(
    st.builds("placed_at {} {}".format, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
              st.sampled_from(_ATOM_LITERALS)),
    st.builds("placed_at {}in [{}]".format, st.sampled_from(["", "not "]),
              st.lists(st.sampled_from(_ATOM_LITERALS), max_size=2).map(", ".join)),
    st.just("exists placed_at"), st.just("missing placed_at"),
)
_conditions = st.recursive(_atoms, lambda inner: st.one_of(
    inner.map("not ({})".format),
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(" + " and ".join(xs) + ")"),
    st.lists(inner, min_size=2, max_size=2).map(lambda xs: "(" + " or ".join(xs) + ")"),
), max_leaves=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(condition=_conditions)
def test_w0250_never_cries_wolf_on_timestamps(tmp_path: Path, condition: str) -> None:
    event = CHECKED.replace("placed_at: timestamp", "placed_at: timestamp?")
    project = _project(tmp_path, event + f"route r {{ on order.created when {condition} to a }}\n")
    if [d.code for d in check_predicates(project)] != ["W0250"]:
        return
    when = project.routes["r"].when
    assert when is not None
    stamps = project_timestamp_paths(project)["r"]
    for sample in _SAMPLES:
        assert not evaluate(when, {} if sample is None else {"placed_at": sample}, stamps), sample


# ---- the property: the compiled router equals the reference -----------------------------

LITERALS = {
    "L1": "2024-05-02T09:14:00Z",
    "L2": "2024-05-02T11:14:00+02:00",  # the same instant as L1
    "L3": "2024-05-02T10:00:00.5Z",
    "L4": "2024-05-02",
    "L5": "2024-05-02T03:00:00-07:00",  # 10:00Z
}
PROPERTY = """
event order.created {
  placed_at: timestamp?
  dates: list<timestamp>?
  items: list<{ at: timestamp?, sku: string? }>?
}
target t0 { on_exhausted drop }
target t1 { on_exhausted drop }
target t2 { on_exhausted drop }
target t3 { on_exhausted drop }
target t4 { on_exhausted drop }
target t5 { on_exhausted drop }
target t6 { on_exhausted drop }
target t7 { on_exhausted drop }
route to_r0 { on order.created when placed_at > "L1" to t0 }
route to_r1 { on order.created when placed_at == "L2" or placed_at <= "L4" to t1 }
route to_r2 { on order.created when placed_at != "L3" and placed_at >= "L1" to t2 }
route to_r3 { on order.* when placed_at in ["L1", "L3", "L5"] to t3 }
route to_r4 { on order.created when placed_at not in ["L2", "L4"] and placed_at < "L5" to t4 }
route to_r5 { on order.created when items.at >= "L3" or any dates in ["L2", "L5"] to t5 }
route to_r6 { on order.created when not (placed_at < "L3") and items.sku == "a" to t6 }
route to_r7 { on order.** when items.at == "L1" and not (items.at in ["L5"]) to t7 }
choose c {
  on order.*
  when placed_at < "L1" to t0
  when placed_at == "L5" to t1
  when items.at != "L2" to t2
  when placed_at >= "L3" to t3
  otherwise to t6
}
"""
for _name, _literal in LITERALS.items():
    PROPERTY = PROPERTY.replace(f'"{_name}"', f'"{_literal}"')

_UTC = datetime.UTC
_BASES = [datetime.datetime(2024, 5, 2, 9, 14, tzinfo=_UTC),  # L1 and L2
          datetime.datetime(2024, 5, 2, 10, 0, 0, 500000, tzinfo=_UTC),  # L3
          datetime.datetime(2024, 5, 2, tzinfo=_UTC),  # L4
          datetime.datetime(2024, 5, 2, 10, tzinfo=_UTC)]  # L5


@st.composite
def _instant(draw: st.DrawFn) -> str:
    """An instant near the literals (often one of them), written with a random offset."""
    base = draw(st.sampled_from(_BASES))
    moment = base + datetime.timedelta(microseconds=draw(st.sampled_from(
        [0, 0, 0, 1, -1, 500000, -500000, 60_000_000, -3_600_000_000, 86_400_000_000])))
    minutes = draw(st.integers(-14 * 4, 14 * 4)) * 15
    style = draw(st.sampled_from(["offset", "offset", "Z", "naive", "date", "compact", "fraction"]))
    if style == "Z":
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond:06d}" if moment.microsecond else "") + "Z"
    if style == "naive":
        return moment.replace(tzinfo=None).isoformat()
    if style == "date":
        return moment.date().isoformat()
    local = moment.astimezone(datetime.timezone(datetime.timedelta(minutes=minutes)))
    if style == "compact":
        return local.strftime("%Y%m%dT%H%M%S%z")
    if style == "fraction":
        return local.isoformat(timespec="microseconds")
    return local.isoformat()


_garbage = st.sampled_from(["yesterday", "", "2024-05-02X09:14:00Z", "2024-02-30", 5, 0.5, True, {"at": 1}, "a"])
_value: st.SearchStrategy[Any] = st.one_of(_instant(), _instant(), _garbage, st.none())
_field = st.one_of(_value, _value, st.lists(_value, max_size=3))
_data = st.fixed_dictionaries({}, optional={
    "placed_at": _field,
    "dates": st.one_of(st.lists(_value, max_size=3), _value),
    "items": st.one_of(st.lists(st.fixed_dictionaries({}, optional={"at": _field, "sku": st.sampled_from(["a", "b"])}),
                                max_size=3), _value),
})
_EVENT_TYPES = ["order.created", "order.created", "order.legacy", "order.x.y", "audit.logged"]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Router, Match]:
    project = _project(tmp_path_factory.mktemp("property"), PROPERTY)
    assert [d for d in project.diagnostics if d.is_error] == []
    router = Router(json.loads(json.dumps(build_artifact(project))))
    return router, _reference(project)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(st.tuples(st.sampled_from(_EVENT_TYPES), _data), min_size=1, max_size=5))
def test_compiled_matching_equals_the_reference_on_timestamps(
        both: tuple[Router, Match], events: list[tuple[str, dict[str, Any]]]) -> None:
    router, reference = both
    for event_type, data in events:
        assert router.match(event_type, data) == reference(event_type, data), (event_type, data)
        explained = {t for e in router.explain(event_type, data) for t in e.targets}
        assert explained == router.match(event_type, data)
