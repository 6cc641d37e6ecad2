"""`interlock.load`, the artifact, `Router.match` / `explain`, and `interlock compile` / `explain`."""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from matching_modes import anchors_only

import interlock
from interlock.cli import main
from interlock.compiler.route_tests import run_tests
from interlock.dsl import load_project
from interlock.runtime.transform import apply_transform

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Every project under examples/: each folder is a project of its own.
PROJECTS = ["shop", "http"]

PROJECT = """
target fraud { mode sync, timeout 100ms }
target billing { mode async, on_exhausted drop }
target audit { mode async, on_exhausted drop }
target priority { mode async, on_exhausted drop }
target eu { mode async, on_exhausted drop }
route big { on order.created when amount >= 1000 and currency in ["USD", "EUR"] to fraud, billing }
route every { on order.** to audit }
choose region {
  on order.created
  when tier == "gold" to priority
  when currency == "EUR" to eu
  otherwise to billing
}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "p.route"
    path.write_text(PROJECT)
    return path


def test_match_routes_fans_out_and_chooses(project: Path) -> None:
    router = interlock.load(str(project))
    assert router.match("order.created", {"amount": 5000, "currency": "EUR", "tier": "gold"}) == {
        "fraud", "billing", "audit", "priority"}
    assert router.match("order.created", {"amount": 5, "currency": "EUR"}) == {"audit", "eu"}
    assert router.match("order.created", {}) == {"audit", "billing"}
    # a type no table was compiled for still reaches the globs that match it
    assert router.match("order.line.added", {"amount": 5000}) == {"audit"}
    assert router.match("payment.failed", {}) == frozenset()


@pytest.mark.parametrize("name", PROJECTS)
def test_the_examples_route_as_their_tests_say(name: str) -> None:
    router = interlock.load(str(EXAMPLES / name))
    project = load_project([str(EXAMPLES / name)])
    for step in run_tests(project):
        test = project.tests[step.test]
        send = test.steps[step.step - 1].send
        data = interlock.dsl.ast.to_python(send.data) if send.data else {}
        assert router.match(step.event_type, data) == step.expected, step
        deliveries = router.deliveries(step.event_type, data)
        for payload in step.payloads:  # what the runtime hands the target is what the test compared
            _, transform = deliveries[payload.target][0]
            assert (apply_transform(transform, data) if transform else data) == payload.actual, step


def test_explain_says_why(project: Path) -> None:
    router = interlock.load(str(project))
    explained = {e.name: e for e in router.explain("order.created", {"amount": 5000, "currency": "GBP"})}
    big = explained["big"]
    assert not big.matched and big.condition is not None
    amount, currency = big.condition.parts
    assert (amount.text, amount.seen, amount.verdict) == ("amount >= 1000", (5000,), True)
    assert (currency.text, currency.seen, currency.verdict) == ('currency in ["USD", "EUR"]', ("GBP",), False)
    region = explained["region"]
    assert region.chosen == 2 and region.targets == {"billing"}
    assert [b is None or b.verdict for b in region.branches] == [False, False, True]


def test_an_artifact_round_trips_and_refuses_tampering(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.json"
    assert main(["compile", str(project), "-o", str(out)]) == 0
    router = interlock.load(str(out))
    assert router.match("order.created", {"amount": 5000, "currency": "USD"}) == {"fraud", "billing", "audit"}
    content = json.loads(out.read_text())
    assert content["format"] == "interlock-router" and content["version"] == 1
    assert content["source_hash"].startswith("sha256:") and content["integrity"].startswith("sha256:")
    assert content["targets"]["fraud"]["mode"] == "sync" and content["targets"]["fraud"]["timeout_ms"] == 100

    edited = dict(content, targets={**content["targets"], "fraud": {**content["targets"]["fraud"], "mode": "async"}})
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    with pytest.raises(interlock.ArtifactError, match="modified after it was compiled"):
        interlock.load(str(tmp_path / "edited.json"))

    other = dict(content, version=3)
    (tmp_path / "v3.json").write_text(json.dumps(other))
    with pytest.raises(interlock.ArtifactError, match="format version 3; this runtime reads versions 1 and 2"):
        interlock.load(str(tmp_path / "v3.json"))

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(interlock.ArtifactError, match="not JSON"):
        interlock.load(str(tmp_path / "bad.json"))
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(interlock.ArtifactError, match="not an interlock router"):
        interlock.load(str(tmp_path / "other.json"))


def test_identical_tables_are_shared(tmp_path: Path) -> None:
    path = tmp_path / "p.route"
    path.write_text("target t { mode async, on_exhausted drop }\nevent a.x\nevent a.y\nevent b.z\n"
                    "route r { on a.* when n == 1 to t }\n")
    content = interlock.compile(str(path))
    types = content["dispatch"]["types"]
    assert types["a.x"] == types["a.y"] != types["b.z"]


def test_the_runtime_leaves_an_artifact_as_it_was(project: Path) -> None:
    # The compiler's artifact shares its parts (a rule's checks are the objects of its
    # route's `when`): nothing that reads an artifact may change it.
    artifact = interlock.compile(str(project))
    rules, routes = artifact["dispatch"]["rules"], artifact["dispatch"]["routes"]
    big = next(r for r in rules if r["check"] and routes[r["route"]]["name"] == "big")
    assert any(c is big["check"][0] for c in routes[big["route"]]["when"]["args"])
    before = json.dumps(artifact, sort_keys=True)
    router = interlock.Router(artifact)
    for data in ({"amount": 5000, "currency": "EUR", "tier": "gold"}, {"amount": 5}, {}):
        router.match("order.created", data)
        router.explain("order.created", data)
        router.deliveries("order.created", data)
    assert json.dumps(artifact, sort_keys=True) == before


def test_compile_and_load_free_the_project_before_the_collector_is_back(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One pause of the collector for all of a compile: the project's objects are freed
    # unscanned (a pause per step made the collector scan the whole AST after loading).
    import gc
    import weakref

    collector_on_when_freed: list[bool] = []

    def loading(*args: object) -> object:
        loaded = load_project(*args)  # type: ignore[arg-type]
        weakref.finalize(loaded, lambda: collector_on_when_freed.append(gc.isenabled()))
        return loaded

    monkeypatch.setattr(interlock, "load_project", loading)
    monkeypatch.setattr(interlock, "_CACHE", {})
    assert interlock.compile(str(project))["format"] == "interlock-router"
    assert interlock.load(str(project)).match("order.created", {"amount": 5}) == {"audit", "billing"}
    assert interlock.load(str(project)).match("order.created", {}) == {"audit", "billing"}  # (cached)
    assert collector_on_when_freed == [False, False, False]


def test_compile_refuses_a_project_with_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.route").write_text("route r { on e to nowhere }\n")
    assert main(["compile", str(tmp_path), "-o", str(tmp_path / "r.json")]) == 1
    assert "error[E0104]" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(interlock.CompileError, match="1 error"):
        interlock.load(str(tmp_path))


def test_explain_command(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "order.created",
                                 "data": {"amount": 5000, "currency": "EUR"}}))
    assert main(["explain", str(project), "--event", str(event)]) == 0
    out = capsys.readouterr().out
    assert "order.created -> audit, billing, eu, fraud" in out
    assert "✓ amount >= 1000  saw 5000" in out
    assert main(["explain", str(project), "--event", str(event), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["targets"] == ["audit", "billing", "eu", "fraud"]
    (tmp_path / "bad.json").write_text("[1]")
    assert main(["explain", str(project), "--event", str(tmp_path / "bad.json")]) == 2


def _generated(router: interlock.Router, event_type: str) -> bool:
    entry = router.matcher._dispatch[event_type]  # which code the type's matching runs
    return callable(entry) and entry.__code__.co_filename.startswith("<interlock table")


def test_a_choose_goes_through_generated_code_and_the_first_branch_that_fires_wins(project: Path) -> None:
    router = interlock.load(str(project))
    assert _generated(router, "order.created")
    # both conditional branches fire (the later one by its anchor): the earlier one wins
    assert router.match("order.created", {"tier": "gold", "currency": "EUR"}) == {"audit", "priority"}
    assert router.match("order.created", {"tier": ["x", "gold"], "currency": ["GBP", "EUR"]}) == {
        "audit", "priority"}
    assert router.match("order.created", {"tier": "silver", "currency": "EUR"}) == {"audit", "eu"}
    # the unconditional `otherwise`, taken when no branch before it fires
    assert router.match("order.created", {"tier": "silver", "currency": "GBP"}) == {"audit", "billing"}
    # a route alongside reaches a target the choose also reaches
    assert router.match("order.created", {"amount": 5000, "currency": "USD"}) == {"audit", "billing", "fraud"}
    answer = router.match("order.created", {"tier": "gold"})
    assert type(answer) is frozenset and answer == router.match("order.created", {"tier": "gold"})


TWO_CHOOSES = """
target t1 { mode async, on_exhausted drop }
target t2 { mode async, on_exhausted drop }
target t3 { mode async, on_exhausted drop }
target t4 { mode async, on_exhausted drop }
target t5 { mode async, on_exhausted drop }
target t6 { mode async, on_exhausted drop }
event e.x { k: string, n: int, s: string }
route r { on e.x when s startswith "ab" to t6 }
choose first {
  on e.x
  when n > 5 to t1
  when k == "x" to t2
  otherwise to t3
}
choose second {
  on e.x
  when missing k to t4
  when k in ["x", "y"] or s startswith "a" to t5
  when n in 0..10 to t1
}
"""


@pytest.mark.parametrize(("data", "expected"), [
    ({"k": "x", "n": 7}, {"t1", "t5"}),  # first: n > 5 over k == "x"; second: the `in` over the range
    ({"k": "x", "n": 3}, {"t2", "t5"}),
    ({"k": "z", "n": 3}, {"t3", "t1"}),  # first: otherwise; second: only its last branch fires
    ({"k": "z", "n": 30}, {"t1"}),  # second: no branch fires, and it has no `otherwise`
    ({"n": 3}, {"t3", "t4"}),  # second: `missing k` (a scanned rule) before the range's anchor
    ({"k": "z", "s": "abc"}, {"t3", "t5", "t6"}),  # second's branch 1 by its other disjunct; the route
    ({"k": "z"}, {"t3"}),
    ({"k": ["z", "y"], "n": [30, 2]}, {"t1", "t5"}),
])
def test_two_chooses_in_one_type_each_take_their_first_branch(
        tmp_path: Path, data: dict[str, object], expected: set[str]) -> None:
    (tmp_path / "p.route").write_text(TWO_CHOOSES)
    router = interlock.load(str(tmp_path))
    assert _generated(router, "e.x")
    assert router.match("e.x", data) == expected
    # the same as the general path (what `deliveries` walks)
    assert set(router.deliveries("e.x", data)) == expected


def test_data_that_is_not_a_plain_dict_matches_as_a_dict_does(project: Path) -> None:
    router = interlock.load(str(project))
    data = {"amount": 5000, "currency": "EUR", "tier": "gold"}
    assert router.match("order.created", OrderedDict(data)) == router.match("order.created", data) == {
        "fraud", "billing", "audit", "priority"}
    assert router.match("order.created", None) == {"audit", "billing"}
    # A path enters lists at every step, the first included, as the reference reads it (this
    # once asserted the runtime's own answer, nothing: found by review)
    assert router.match("order.created", [data]) == router.match("order.created", data)


def test_answers_past_the_memo_are_still_right(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interlock.runtime.matching, "_MEMO", 2)  # remembers the first two masks only
    (tmp_path / "p.route").write_text(TWO_CHOOSES)
    router = interlock.load(str(tmp_path))
    cases = [({"k": "x", "n": 7}, {"t1", "t5"}), ({"k": "x", "n": 3}, {"t2", "t5"}), ({"n": 3}, {"t3", "t4"}),
             ({"k": "z", "s": "abc"}, {"t3", "t5", "t6"}), ({"k": "z", "n": 30}, {"t1"})]
    for _ in range(2):
        for data, expected in cases:
            assert router.match("e.x", data) == expected


def test_a_set_lookup_check_opens_list_subclasses_as_the_predicates_do(tmp_path: Path) -> None:
    class Items(list[int]):
        pass

    (tmp_path / "p.route").write_text(
        "target t1 { mode async, on_exhausted drop }\n"
        "route r { on e.x when a == 1 and b in [2, 3] to t1 }\n")
    router = interlock.load(str(tmp_path / "p.route"))
    data = {"a": 1, "b": Items([2])}
    assert router.match("e.x", data) == {"t1"} == set(router.deliveries("e.x", data))


def test_lists_within_lists_are_entered_by_match_explain_and_check(tmp_path: Path) -> None:
    """A path goes on in every element of a list, and of the lists within it, at any depth
    (from the issue: `employees.firstName` never reached `[[{firstName: "Anna"}]]`, and
    `check` refused `contains` on a `list<list<string>>`)."""
    (tmp_path / "p.route").write_text(
        "event e.x { employees: list<list<{ firstName: string }>>?, tags: list<list<string>>? }\n"
        "target t { on_exhausted drop }\ntarget u { on_exhausted drop }\ntarget v { on_exhausted drop }\n"
        'route anna { on e.x when employees.firstName == "Anna" to t }\n'
        'route vip { on e.x when tags contains "vip" to u }\n'
        'route any_vip { on e.x when any tags in ["vip", "gold"] to v }\n')
    router = interlock.load(str(tmp_path / "p.route"))
    nested = {"employees": [[{"firstName": "Bob"}], [{"firstName": "Anna"}]], "tags": [["x"], ["vip"]]}
    assert router.match("e.x", nested) == {"t", "u", "v"}
    assert router.match("e.x", {"employees": [[{"firstName": "Bob"}]], "tags": [["x"]]}) == set()
    (anna, *_rest) = router.explain("e.x", nested)
    assert anna.matched


class _Counted(list):  # type: ignore[type-arg]
    """A list that counts the items read from it."""

    reads = 0

    def __getitem__(self, index: object) -> object:
        _Counted.reads += 1
        return super().__getitem__(index)  # type: ignore[index]


def test_type_globs_take_at_most_pattern_times_type_steps() -> None:
    """`**.**.**.**.**.**.**.**.audit` against a 30-segment type that does not match took 14 s
    (a recursion that tried every split): the segments read stay within the product of the
    two lengths (issue 15), and the answers are those of the reference's definition."""
    from interlock.compiler.reference import event_type_matches as reference
    from interlock.runtime.matching import event_type_matches, segments_match

    pattern = ["**", "**", "**", "**", "**", "**", "**", "**", "audit"]
    parts = _Counted(["x"] * 30)
    _Counted.reads = 0
    assert not segments_match(pattern, parts)
    assert _Counted.reads <= len(pattern) * len(parts)
    cases = [("**.audit", "a.b.audit"), ("**.**.audit", "audit"), ("*.**.*", "a"), ("*.**.*", "a.b"),
             ("a.**.b.**.c", "a.x.b.y.z.c"), ("a.**.b.**.c", "a.x.c.b"), ("**", ""), ("*", "")]
    for glob, event_type in cases:
        assert event_type_matches(glob, event_type) == reference(glob, event_type), (glob, event_type)


def test_unknown_event_types_share_tables_and_are_remembered_up_to_a_bound(tmp_path: Path) -> None:
    """Each new type no table was compiled for generated fresh code and was kept for good: a
    stream of distinct junk types grew memory without bound (issue 15)."""
    from interlock.runtime import matching

    (tmp_path / "p.route").write_text("target t { mode sync }\ntarget u { mode sync }\n"
                                      "route a { on audit.** when x == 1 to t }\nroute b { on **.v2 to u }\n")
    router = interlock.Router(interlock.compile(str(tmp_path)))
    for number in range(matching.MAX_UNKNOWN + 500):
        assert router.match(f"audit.junk{number}", {"x": 1}) == {"t"}
        assert router.match(f"junk{number}.v2", {"x": 1}) == {"u"}
    assert router.match("audit.v2", {"x": 1}) == {"t", "u"}
    matcher = router.matcher
    assert len(matcher._unknown) <= matching.MAX_UNKNOWN
    assert len(matcher._by_routes) == 3  # {a}, {b}, {a, b}


def test_many_overlapping_ranges_agree_with_the_reference(tmp_path: Path) -> None:
    """Hundreds of ranges on one field, nested and overlapping, open and closed, with and
    without a further check, answer as the reference does at and between every boundary (the
    ranges index is a segment tree and per-slot masks: issue 15)."""
    import random

    from interlock.compiler.reference import route as reference

    rng = random.Random(5)
    lines = [f"target t{i} {{ mode sync }}" for i in range(300)]  # a target per route: the routes show
    for number in range(300):
        low, high = sorted((rng.randrange(0, 60), rng.randrange(0, 60)))
        form = rng.choice([f"amount > {low}", f"amount >= {low}", f"amount < {high}", f"amount <= {high}",
                           f"amount in {low}..{high}", f"amount > {low} and amount < {high}.5"])
        if rng.random() < 0.4:
            form += f' and tier == "{rng.choice("ab")}"'
        lines.append(f"route r{number} {{ on e when {form} to t{number} }}")
    (tmp_path / "p.route").write_text("\n".join(lines) + "\n")
    router = interlock.Router(interlock.compile(str(tmp_path)))
    project = load_project([str(tmp_path / "p.route")])
    routes = list(project.routes.values())
    for amount in [x / 2 for x in range(-2, 125)] + [float("inf"), float("-inf"), float("nan"), True]:
        for data in ({"amount": amount, "tier": "a"}, {"amount": [amount, 3], "tier": "b"}):
            expected = reference(routes, [], "e", data)
            assert router.match("e", data) == expected, data
            assert set(router.deliveries("e", data)) == expected, data


def test_generated_checks_name_their_route_in_a_traceback(tmp_path: Path) -> None:
    """A rule's tests are generated Python (written out, not closures); a traceback from inside
    them shows the generated line, and the line or its function names the route's file and line
    (issue 15: the line mapping of the generated code). For each way a table is matched: rule by rule, as bit masks
    (a residual test), by anchors."""
    import traceback

    class Exploding(list[Any]):  # a list that cannot be read, to get a traceback from inside
        def __iter__(self) -> Iterator[Any]:
            raise RuntimeError("a failing list")

    routes = "".join(f'route r{i} {{ on e when kind == "k{i}" and tier != "x" to t }}\n' for i in range(4))
    (tmp_path / "p.route").write_text("target t { mode sync }\n"
                                      "route big_orders { on e when kind != \"x\" and amount > 10 to t }\n")
    routes = routes.replace("on e", "on f").replace("to t", "to u")
    (tmp_path / "q.route").write_text("target u { mode sync }\n" + routes)
    traced: list[str] = []
    for mode in (contextlib.nullcontext, anchors_only):
        with mode():
            router = interlock.Router(interlock.compile(str(tmp_path)))
        assert router.match("e", {"kind": "k", "amount": 20}) == {"t"}
        assert router.match("e", {"kind": "k", "amount": 5}) == frozenset()
        for event_type, data, where in (("e", {"kind": Exploding(), "amount": 20}, "p.route:2:1"),
                                        ("f", {"kind": "k2", "tier": Exploding()}, "q.route:4:1")):
            text = ""
            try:
                router.match(event_type, data)
            except RuntimeError:
                text = traceback.format_exc()
                # (a comment on the generated line, or the name of the function the line is in)
                assert f"route {'big_orders' if event_type == 'e' else 'r2'}, {tmp_path / where}" in text, text
                traced.append(event_type)
            # (else a test the index answers: it hashes the value and never compares it)
    assert traced.count("f") == 2  # the residual test of bit masks, a rule's check by anchors
    assert "e" in traced  # a table tested rule by rule


BIG = 10**400
BIG_NUMBERS = """
target above { on_exhausted drop }
target below { on_exhausted drop }
target ranged { on_exhausted drop }
target listed { on_exhausted drop }
target exact { on_exhausted drop }
target unequal { on_exhausted drop }
route to_above { on e.x when n > 1.5e308 or n >= 100000000000000000000000000000 to above }
route to_below { on e.x when n < -1.5e308 to below }
route to_ranged { on e.x when n in 1 .. 9007199254740992.0 to ranged }
route to_listed { on e.x when n in [9007199254740992.0, 2.5] to listed }
route to_exact { on e.x when n == 9007199254740993 to exact }
route to_unequal { on e.x when n != 9007199254740992.0 to unequal }
"""


@pytest.mark.parametrize(("value", "expected"), [
    (BIG, {"above", "unequal"}),
    (-BIG, {"below", "unequal"}),
    (2**53 + 1, {"exact", "unequal"}),  # beyond 2**53, not the float 2**53 it rounds to
    (2**53, {"ranged", "listed"}),
    (9007199254740992.0, {"ranged", "listed"}),
    (2**53 - 1, {"ranged", "unequal"}),
    (10**29, {"above", "unequal"}),
    (10**29 - 1, {"unequal"}),
    ([BIG, 1], {"above", "ranged", "unequal"}),
], ids=["10**400", "-10**400", "2**53+1", "2**53", "2.0**53", "2**53-1", "10**29", "10**29-1", "[10**400, 1]"])
def test_integers_of_any_size_compare_exactly(tmp_path: Path, value: object, expected: set[str]) -> None:
    """With int and float literals, orderings, ranges, `in`, `==` and `!=`: the exact answer,
    in match, explain and the reference interpreter alike (from the issue: `10**400` was an
    OverflowError in `router.match`)."""
    from interlock.compiler.reference import route

    (tmp_path / "p.route").write_text(BIG_NUMBERS)
    router = interlock.load(str(tmp_path / "p.route"))
    project = load_project([str(tmp_path / "p.route")])
    data = {"n": value}
    assert router.match("e.x", data) == expected
    assert {t for e in router.explain("e.x", data) for t in e.targets} == expected
    assert route(list(project.routes.values()), [], "e.x", data) == expected


def test_commands_refuse_json_nested_too_deep_to_read(project: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`explain --event`, `publish` and `simulate --events` read JSON nested past what
    Python's decoder takes as a usage error naming the file, not an internal error."""
    deep = '{"type": "order.created", "data": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"
    (tmp_path / "deep.json").write_text(deep)
    too_deep = "is nested too deep to read (event data is nested at most 64 levels)"

    def said() -> str:
        return " ".join(capsys.readouterr().err.split())

    assert main(["explain", str(project), "--event", str(tmp_path / "deep.json")]) == 2
    assert f"`{tmp_path / 'deep.json'}` {too_deep}" in said()
    assert main(["publish", str(project), "--event", str(tmp_path / "deep.json"), "--store", "memory://"]) == 2
    assert too_deep in said()
    assert main(["publish", str(project), "order.created", "--data", deep, "--store", "memory://"]) == 2
    assert f"--data {too_deep}" in said()
    assert main(["simulate", str(project), "--events", str(tmp_path / "deep.json")]) == 2
    assert f"deep.json:1: the event {too_deep}" in said()


SCHEMA = """
event order.created { id: string, amount: float, customer: { id: string } }
target billing { mode async, on_exhausted drop }
route bill { on order.created when amount > 10 to billing }
"""


def test_problems_lists_every_field_publish_would_refuse(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text(SCHEMA)
    router = interlock.load(str(tmp_path))
    data = {"amount": "5", "customer": {}, "coupon": "X"}
    problems = router.problems("order.created", data)
    assert [p.path for p in problems] == ["coupon", "id", "amount", "customer.id"]
    with pytest.raises(interlock.SchemaError) as refused:  # publish stops at the first of them
        router.validate("order.created", data)
    assert str(refused.value) == problems[0].message
    assert router.problems("order.created", {"id": "o1", "amount": 5, "customer": {"id": "c1"}}) == []
    assert router.problems("order.created", [1]) == [
        interlock.SchemaProblem("", "event data must be a JSON object (a dict), not list")]
    assert router.problems("other.event", {"anything": [1]}) == []  # no schema


def test_explain_shows_the_schema_verdict_first_and_fails_on_an_event_publish_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.route").write_text(SCHEMA)
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"type": "order.created", "data": {"amount": 50, "customer": {}}}))
    assert main(["explain", str(tmp_path), "--event", str(event)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "order.created -> billing  (would be refused by publish)"
    assert "✗ publish refuses it: 2 problems with the schema of order.created" in lines[1]
    assert "field `id` is required" in lines[2] and "field `customer.id` is required" in lines[3]
    assert "✓ route bill -> billing" in out and "✓ amount > 10  saw 50" in out  # the routing, still
    assert main(["explain", str(tmp_path), "--event", str(event), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["accepted"] is False and report["schema"] is True
    assert report["problems"] == [{"path": "id", "message": "field `id` is required"},
                                  {"path": "customer.id", "message": "field `customer.id` is required"}]
    assert report["targets"] == ["billing"]

    event.write_text(json.dumps({"type": "order.created", "data": {"id": "o1", "amount": 50, "customer": {"id": "c"}}}))
    assert main(["explain", str(tmp_path), "--event", str(event)]) == 0
    out = capsys.readouterr().out
    assert "would be refused" not in out
    assert "✓ publish takes it: the data fits the schema of order.created" in out
    event.write_text(json.dumps({"type": "order.shipped", "data": {"x": 1}}))
    assert main(["explain", str(tmp_path), "--event", str(event), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accepted"] is True and report["schema"] is False and report["problems"] == []
